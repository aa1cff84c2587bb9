"""The hub's refusals: `HubError(code, message, **extra)`, in the one
convention both services share (mecene/errors.py: the codes, their statuses
and the `{"error", "message", …}` envelope)."""

from __future__ import annotations

from typing import Any

from mecene.errors import STATUS, Refused

# The codes the hub sends (PROTOCOL.md, "The hub's API").
HUB_CODES = frozenset(
    {
        "invalid",
        "bad_json",
        "unsigned",
        "bad_account",
        "bad_signature",
        "bad_timestamp",
        "bad_nonce",
        "stale",
        "replayed",
        "insufficient_funds",
        "declined",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "settlement_conflict",
        "month_not_ended",
        "month_before_account",
        "own_key",
        "id_conflict",
        "key_taken",
        "not_proven",
        "not_claimable",
        "slow_body",
        "too_large",
        "unsupported_media_type",
        "bad_token",
        "token_spent",
        "tokens_issued",
        "not_unlinkable",
        "token_expired",
        "stale_record",
        "too_many_records",
        "device_unknown",
        "device_removed",
        "device_taken",
        "too_many_devices",
        "invite_taken",
    }
)
assert HUB_CODES <= STATUS.keys()


class HubError(Refused):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        if code not in HUB_CODES:
            raise ValueError(f"unknown hub error code {code!r}")
        self.code = code
        super().__init__(message, **extra)
