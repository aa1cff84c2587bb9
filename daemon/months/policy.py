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
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mecene.time import add_months, months_between, timestamp_at, zone

from .. import sendpolicy


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


# -- the month's trip to the hub: the hub's answer in, the month's next state out ---------


@dataclass(frozen=True)
class Step:
    """What a closed month becomes after the hub's answer, and what the hub
    link does about it: the fields to record (the state among them), whether
    to refresh the balance first (so a settled month never shows the balance
    from before its debit), the person's own keys to learn and whether to
    split the month again without them, and when to try again (None: done,
    or waiting for a person)."""

    state: MonthState
    record: dict[str, Any] = field(default_factory=dict)
    refresh_balance: bool = False
    own_keys: tuple[str, ...] = ()
    split_again: bool = False
    wait: float | None = None
    fetch_records: bool = False  # settled by another computer: take it from the records


# A month's sync error while another computer's settlement of it is looked for.
SETTLED_ELSEWHERE = "settled_elsewhere"


def answered(
    state: str,
    meaning: sendpolicy.Accepted
    | sendpolicy.Retry
    | sendpolicy.NeedsPerson
    | sendpolicy.SplitAgain
    | sendpolicy.SettledElsewhere,
    *,
    attempts: int,
    now: float,
    receipt: tuple[str, str] | None = None,
) -> Step:
    """The month in `state` (submitted: it was just sent) after the hub's
    answer, as daemon/sendpolicy.py reads it. `receipt` is the receipt and its
    signature once the hub link has checked them; an accepted answer without
    one is the link's to turn into a retry. `now` is Unix seconds."""
    if isinstance(meaning, sendpolicy.Accepted):
        if receipt is None:
            raise ValueError("an accepted settlement is recorded with its checked receipt")
        to = move(state, MonthState.SETTLED)
        return Step(
            to,
            {
                "state": to,
                "receipt": receipt[0],
                "receipt_signature": receipt[1],
                "settled_at": timestamp_at(now),
                "sync_error": None,
                "next_sync_at": None,
            },
            refresh_balance=True,
        )
    if isinstance(meaning, sendpolicy.NeedsPerson):
        to = move(state, MonthState.CLOSED)
        return Step(to, {"state": to, "sync_error": meaning.code, "next_sync_at": None})
    if isinstance(meaning, sendpolicy.SettledElsewhere):
        # Taken from the records (the hub link fetches them now); until they
        # hold it, looked for again like any retry.
        to = move(state, MonthState.CLOSED)
        return Step(
            to,
            {
                "state": to,
                "sync_attempts": attempts,
                "sync_error": SETTLED_ELSEWHERE,
                "next_sync_at": timestamp_at(now + meaning.seconds),
            },
            wait=meaning.seconds,
            fetch_records=True,
        )
    if isinstance(meaning, sendpolicy.SplitAgain):
        # Keys of the person's own (claimed elsewhere since the month closed):
        # the month was never accepted, so it is split again without them.
        return Step(move(state, MonthState.CLOSED), own_keys=meaning.keys, split_again=True)
    to = move(state, meaning.state)
    return Step(
        to,
        {
            "state": to,
            "sync_attempts": attempts,
            "sync_error": meaning.code,
            "next_sync_at": timestamp_at(now + meaning.seconds),
        },
        wait=meaning.seconds,
    )
