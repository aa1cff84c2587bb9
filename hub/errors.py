"""The hub's errors: a stable code, a sentence, and the HTTP status it maps to."""

from __future__ import annotations

from typing import Any

STATUS = {
    "invalid": 400,
    "bad_json": 400,
    "unsigned": 401,
    "bad_account": 401,
    "bad_signature": 401,
    "bad_timestamp": 401,
    "bad_nonce": 401,
    "stale": 401,
    "replayed": 401,
    "insufficient_funds": 402,
    "declined": 402,
    "forbidden": 403,
    "not_found": 404,
    "settlement_conflict": 409,
    "month_not_ended": 409,
    "month_before_account": 409,
    "own_key": 409,
    "id_conflict": 409,
    "key_taken": 409,
    "not_proven": 422,
    "not_claimable": 422,
    "slow_body": 408,
    "too_large": 413,
    "unsupported_media_type": 415,
}


class HubError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        if code not in STATUS:
            raise ValueError(f"unknown hub error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return STATUS[self.code]
