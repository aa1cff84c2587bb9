"""A gift's rules (pure): its states, what it costs and what the creator
gets, whether the balance allows it, what the hub is told of it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mecene import money, tokens
from mecene.amounts import euros

from ..creators.policy import Joined
from ..errors import InsufficientFunds, Invalid


class GiftState(StrEnum):
    WAITING = "waiting"  # asked for by a browser beyond its daily limit: the person confirms
    SENDING = "sending"
    GIVEN = "given"
    REFUSED = "refused"


# Given or refused is final; the hub link marks only a gift still sending.
FINAL = (GiftState.GIVEN, GiftState.REFUSED)


def in_bounds(cents: int) -> int:
    """The amount, within the money rules' bounds (Invalid says them)."""
    try:
        return money.transfer_cents(cents)
    except money.OutOfBounds as exc:
        raise Invalid(str(exc)) from None


def url_sent(url: str | None, *, private: bool, unlinkable: bool) -> str | None:
    """What the hub is told of the thing: with private settlements the
    creator only; as tokens, not even the creator (the url is not kept)."""
    return None if private or unlinkable else url


def waits_for_the_person(given_today_cents: int, cents: int, limit_cents: int) -> bool:
    """Whether a gift a browser asks for goes past the browser's daily limit
    (with what browsers gave today): then the person confirms it. A paired
    browser can thus never empty the balance on its own."""
    return given_today_cents + cents > limit_cents


def admit(balance_cents: int | None, sending_cents: int, cents: int) -> None:
    """Refuse a gift larger than the balance the hub last gave, less what is
    still on its way there (no balance known yet: the hub decides)."""
    if balance_cents is None:
        return
    left = balance_cents - sending_cents
    if left < cents:
        raise InsufficientFunds(
            f"the balance is {euros(left)}, less than the {euros(cents)} to give: deposit first",
            balance_cents=left,
        )


def quote(
    creator: str,
    cents: int,
    *,
    joined: Joined | None,
    unlinkable: bool,
    balance_cents: int | None,
) -> dict[str, Any]:
    """What `creator` would receive of `cents`, before the person confirms:
    the hub's fee (10 %, none for a non-profit: the hub's published list
    says which), whether they have joined (else it waits in escrow), and
    what the balance would be after. Computed here: asking the hub would
    tell it whom the person thinks of giving to."""
    nonprofit = joined is not None and creator in joined.nonprofit
    if unlinkable:
        # As tokens: the hub takes its fee on each, a whole cent each.
        count = cents // tokens.DENOMINATION
        fee = count * money.creator_fee_cents(tokens.DENOMINATION, nonprofit=nonprofit)
    else:
        fee = money.creator_fee_cents(cents, nonprofit=nonprofit)
    out: dict[str, Any] = {
        "creator": creator,
        "cents": cents,
        "fee_cents": fee,
        "net_cents": cents - fee,
        "nonprofit": nonprofit,
        # As tokens, money held for a creator who has not joined waits
        # for them: the hub cannot know whom to give it back to.
        "unlinkable": unlinkable,
        "joined": None if joined is None else creator in joined.keys,
        "escrow_months": None if joined is None else joined.escrow_months,
        "balance_cents": balance_cents,
        "balance_after_cents": None if balance_cents is None else balance_cents - cents,
    }
    if balance_cents is not None and balance_cents < cents:
        out["short_cents"] = cents - balance_cents
    return out
