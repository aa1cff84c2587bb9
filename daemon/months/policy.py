"""A month's states and the moves between them (pure: no clock, no database).

    open ──close──▶ closed ──send──▶ submitted ──receipt──▶ settled
                      ▲  └─split again─┘ │
                      └──── refused, not arrived, needs a person

A month takes flattrs only while `open`. It is closed once, in one
transaction, when it has ended in the person's time zone; it is closed again
(split anew) only while the hub has not accepted it. `submitted` is written
before the settlement leaves, so a month that may have arrived is sent again.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from mecene.time import add_months, months_between, zone


class MonthState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    SUBMITTED = "submitted"
    SETTLED = "settled"


# Closed and not yet acknowledged by the hub: what the hub link sends.
UNSENT = (MonthState.CLOSED, MonthState.SUBMITTED)

# Every move a month may make; anything else is a bug, refused.
MOVES: dict[MonthState, frozenset[MonthState]] = {
    MonthState.OPEN: frozenset({MonthState.CLOSED}),
    MonthState.CLOSED: frozenset({MonthState.CLOSED, MonthState.SUBMITTED}),
    MonthState.SUBMITTED: frozenset({MonthState.SUBMITTED, MonthState.CLOSED, MonthState.SETTLED}),
    MonthState.SETTLED: frozenset(),
}

# What the hub may say became of a settled month's money.
OUTCOME_STATES = ("pending", "credited", "withheld", "escrow", "returned")
STILL_MOVING = ("pending", "withheld", "escrow")


class IllegalMove(ValueError):
    """A move the month's lifecycle does not have."""


def move(state: str, to: str) -> MonthState:
    """`to`, if a month in `state` may go there; IllegalMove if not."""
    frm, dest = MonthState(state), MonthState(to)
    if dest not in MOVES[frm]:
        raise IllegalMove(f"a month that is {frm} cannot become {dest}")
    return dest


def takes_flattrs(state: str | None) -> bool:
    """Flattrs are recorded, undone and placed only in an open month."""
    return state == MonthState.OPEN


def closes(state: str | None, *, again: bool) -> bool:
    """Whether closing a month in `state` does anything: an open month closes;
    with `again`, a month the hub has not accepted is split anew."""
    if state == MonthState.OPEN:
        return True
    return again and state in UNSENT


def to_open(latest: str | None, current: str) -> list[str]:
    """The months to give a row when `current` is the month now and `latest`
    the last one seen: every month between, so none is skipped."""
    first = current if latest is None else add_months(latest, 1)
    between = months_between(first, current)
    return between if current in between else [*between, current]


def still_moving(outcome: dict[str, Any] | None) -> bool:
    """A settled month is asked about again while its money may still move
    (withheld, in escrow, pending) or nothing is known yet."""
    return outcome is None or any(outcome.get(f"{s}_cents") for s in STILL_MOVING)


def clock_moved_back(
    month: str, closed_at: str | None, now: dt.datetime, now_month: str, tz: str
) -> str | None:
    """Why a flattr found `month` closed when the clock still reads it: the
    clock has moved back (the sentence to show), or None if the month simply
    closed a moment ago (send the flattr again)."""
    if closed_at is None or now_month != month:
        return None
    local = now.astimezone(zone(tz)).strftime("%d %B %Y, %H:%M")
    closed = str(closed_at)[:16].replace("T", " ")
    return (
        f"this computer's clock reads {local} ({tz}), but {month} was already closed "
        f"(at {closed} UTC): the clock has moved back. Set the clock right (automatic "
        "date and time), then flattr again; nothing was recorded."
    )
