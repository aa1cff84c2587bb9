"""Tokens' rules on the person's side (pure: no clock, no database, no network).

planned ──blind──▶ blinded ──hub signs──▶ ready ──redeem──▶ redeemed
                      └──── refused for good ────▶ failed ◀──┘
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mecene import blindrsa, tokens, tokenwire
from mecene.amounts import euros

from .. import budget
from .. import sendpolicy as policy
from ..errors import Invalid


class TokenState(StrEnum):
    PLANNED = "planned"
    BLINDED = "blinded"
    READY = "ready"
    POOLED = "pooled"  # signed, held for gifts: no creator yet (daemon/unlinkable/pool.py)
    REDEEMED = "redeemed"
    FAILED = "failed"


# Not yet signed by the hub: what issuance still has to do.
TO_ISSUE = (TokenState.PLANNED, TokenState.BLINDED)


def spend(cents: int) -> int:
    """What an unlinkable month spends of `cents`: whole tokens of the one
    value (mecene.tokens.whole); the rest, under 10 cents (or past the most
    one issuance holds), is not spent and stays on the balance."""
    return tokens.whole(cents) * tokens.DENOMINATION


def planned(
    month: str, shares: Sequence[budget.Allocation], randbelow: Callable[[int], int]
) -> list[dict[str, Any]]:
    """The rows of a month's plan: its spend in tokens of the one value,
    shared among its creators by randomised rounding (mecene.tokens.apportion,
    in a random order of creators): each creator's expected cents are its
    exact share of the spend."""
    pairs = [(share.creator, share.cents) for share in shares]
    order = sorted(range(len(pairs)), key=lambda _i: randbelow(2**32))
    count = tokens.whole(sum(c for _k, c in pairs))
    counts = tokens.apportion([pairs[i] for i in order], count, randbelow)
    return [
        {
            "id": str(uuid.uuid4()),
            "month": month,
            "creator": creator,
            "cents": tokens.DENOMINATION,
            "state": TokenState.PLANNED.value,
            "attempts": 0,
        }
        for creator, n in sorted(counts.items())
        for _ in range(n)
    ]


def gift_tokens(cents: int) -> int:
    """How many tokens a gift of `cents` is, when it goes as tokens: a whole
    number of them, at most one issuance's (Invalid otherwise)."""
    most = tokens.MAX_TOKENS * tokens.DENOMINATION
    if cents % tokens.DENOMINATION or cents > most:
        raise Invalid(
            f"with unlinkable payments, a gift is a whole number of "
            f"{euros(tokens.DENOMINATION)} tokens, at most {euros(most)}"
        )
    return cents // tokens.DENOMINATION


def redeem_at(now: float, window: float, randbelow: Callable[[int], int]) -> float:
    """When a token just issued is redeemed: at random within the window, so
    that arrivals at the hub do not line up with one person's month close."""
    return now + randbelow(max(1, int(window * 1000))) / 1000


# A token this late was not redeemed in time because the daemon was stopped
# or asleep: its moment is drawn again within a fresh window, so that a
# daemon waking up never sends its overdue tokens together (issue 27, point
# 4: a burst of one person's tokens ties them to each other).
OVERDUE_SECONDS = 60.0


# A month's tokens wait this long when its key directory could not be seen
# again through the second path before their first redemption.
CHECK_AGAIN_SECONDS = 600.0


def overdue(at: float, now: float) -> bool:
    return now - at > OVERDUE_SECONDS


@dataclass(frozen=True)
class Redeemed:
    pass


@dataclass(frozen=True)
class RedeemFailed:
    code: str


@dataclass(frozen=True)
class RedeemLater:
    seconds: float


def redemption_answer(
    status: int | None, data: Any, attempts: int
) -> Redeemed | RedeemFailed | RedeemLater:
    """What the hub's answer to a redemption means: done, refused for good
    (a 4xx but for a time-out or too many requests), or try again later with
    the back-off (unreachable, 408, 429, 5xx)."""
    if status in (200, 201):
        return Redeemed()
    if status is not None and refused_for_good(status):
        code = data.get("error", "refused") if isinstance(data, dict) else "refused"
        return RedeemFailed(str(code))
    return RedeemLater(policy.retry_delay(attempts, policy.RETRY_BASE_SECONDS))


def refused_for_good(status: int) -> bool:
    """A 4xx but for a time-out or too many requests: sending the same again
    cannot change it (a redemption fails; a gift's issuance fails its tokens)."""
    return 400 <= status < 500 and status not in (408, 429)


# -- the rows of `unlinkable_tokens` (hex columns) and the protocol's values -------------


def blinded(key: tokenwire.DirectoryKey) -> dict[str, Any]:
    """A fresh token for the key, blinded: the columns that let it be
    finished from the same blinded message after a crash (`pending`)."""
    p = tokens.begin(key.public)
    return {
        "state": TokenState.BLINDED.value,
        "key_id": tokenwire.key_hex(key.id),
        "nonce": p.nonce.hex(),
        "prefix": p.prefix.hex(),
        "blinded": p.blinded.blinded_msg.hex(),
        "inv": p.blinded.inv.hex(),
    }


def pending(row: dict[str, Any]) -> tokens.Pending:
    nonce, kid = bytes.fromhex(row["nonce"]), tokenwire.key_bytes(row["key_id"])
    prepared = bytes.fromhex(row["prefix"]) + tokens.token_input(nonce, kid)
    b = blindrsa.Blinded(
        blinded_msg=bytes.fromhex(row["blinded"]), inv=bytes.fromhex(row["inv"]), prepared=prepared
    )
    return tokens.Pending(nonce=nonce, key_id=kid, blinded=b)


def redemption(row: dict[str, Any]) -> tokenwire.Redemption:
    token = tokens.Token(
        nonce=bytes.fromhex(row["nonce"]),
        key_id=tokenwire.key_bytes(row["key_id"]),
        authenticator=bytes.fromhex(row["authenticator"]),
    )
    return tokenwire.Redemption(token, bytes.fromhex(row["prefix"]), row["creator"])
