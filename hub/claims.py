"""A creator key's life at the hub, pure: claimed, proved, owned; its escrow
released to its owner or, after the escrow period, returned to the givers
(hub/creators.py is the room that reads and writes it).

    a claim   pending ──proof found──▶ verified
    a key     nobody's ──proved or issued──▶ its owner's, for good
    escrow    held ──key proved──▶ released (credited or withheld)
                   └─escrow period over──▶ returned to each giver
                      (a redeemed token's money has no giver: it waits)
"""

from __future__ import annotations

import secrets
from enum import StrEnum

from mecene.time import add_months

from .errors import HubError


class ClaimState(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"


class Ownership(StrEnum):
    """How an account came to own a key (creator_keys.method)."""

    PROOF = "proof"
    ISSUED = "issued"


def may_own(owner: str | None, account: str, key: str) -> None:
    """`account` may claim or prove `key` unless another account owns it."""
    if owner is not None and owner != account:
        raise HubError("key_taken", f"{key} is already proved by another account")


def escrow_returned_up_to(month_now: str, escrow_months: int) -> str:
    """The last month whose escrow goes back to the givers now: money for
    month M was settled when M ended, and has waited the whole period once
    the month M + period + 1 has begun."""
    return add_months(month_now, -(escrow_months + 1))


def new_flattr_id() -> str:
    """A `flattr:` id the hub issues: `m` and twelve hex digits, never taken
    for a key another platform could mean."""
    return "flattr:m" + secrets.token_hex(6)


def flattr_meta(key: str) -> str:
    """The tag a creator puts on their pages for a `flattr:` id."""
    return f'<meta name="flattr:id" content="{key.removeprefix("flattr:")}">'
