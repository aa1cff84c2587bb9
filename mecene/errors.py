"""The one error convention of the daemon's local API and the hub's API.

A refusal is a stable code, a sentence a person can act on, and extra fields
a program can act on. On the wire it is always the JSON object
`{"error": CODE, "message": SENTENCE, ...extra}` with the HTTP status its code
maps to in `STATUS`; neither side's core knows about HTTP.
"""

from __future__ import annotations

from typing import Any

# Every code either side sends, and its HTTP status.
STATUS = {
    "invalid": 400,
    "bad_json": 400,
    "bad_token": 400,
    # who is asking
    "unauthorized": 401,
    "revoked": 401,  # a browser the person disconnected
    "wrong_passphrase": 401,
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
    "bad_host": 403,
    "bad_origin": 403,
    "not_found": 404,
    "unknown_message": 404,  # the browsers' channel: no such request there
    "method_not_allowed": 405,
    "slow_body": 408,
    # the request conflicts with what is recorded
    "flattr_once": 409,
    "paired_already": 409,
    "flattr_owner": 409,
    "id_conflict": 409,
    "month_closed": 409,
    "clock_behind": 409,
    "settlement_conflict": 409,
    "month_not_ended": 409,
    "month_before_account": 409,
    "own_key": 409,
    "key_taken": 409,
    "token_spent": 409,
    "tokens_issued": 409,
    "stale_record": 409,
    "too_many_records": 409,
    "device_unknown": 403,
    "device_removed": 403,
    "device_taken": 409,
    "too_many_devices": 409,
    "invite_taken": 409,
    "not_unlinkable": 409,
    "subscription_over": 409,
    "token_expired": 410,
    "too_large": 413,
    "unsupported_media_type": 415,
    "not_proven": 422,
    "not_claimable": 422,
    "locked": 423,
    "internal": 500,
    "disk_full": 507,  # nothing was written; reads go on
    "hub_refused": 502,  # the daemon's hub answered no; its code is in `hub_error`
    "hub_unreachable": 503,
    # the browsers' channel (daemon/frames.py, daemon/nativehost.py)
    "bad_message": 400,
    "truncated": 400,
    "bad_length": 400,
    "daemon_down": 503,
    "busy": 503,
}


class Refused(Exception):
    """A request refused for a reason a person can read; subclasses fix `code`."""

    code = "invalid"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        if self.code not in STATUS:
            raise ValueError(f"unknown error code {self.code!r}")
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, Any]:
        """The envelope sent on the wire."""
        return envelope(self.code, self.message, **self.extra)


def envelope(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def kind(code: str, doc: str) -> type[Refused]:
    """A Refused subclass for one code (`Invalid = kind("invalid", "…")`)."""
    if code not in STATUS:
        raise ValueError(f"unknown error code {code!r}")
    name = code.title().replace("_", "")
    return type(name, (Refused,), {"code": code, "__doc__": doc})
