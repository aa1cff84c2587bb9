"""The hub link's policy (daemon/sendpolicy.py) as a table, without sockets:
when a closed month goes, and what each answer of the hub means."""

from __future__ import annotations

from typing import Any

import pytest

from daemon import sendpolicy as policy
from daemon.sendpolicy import (
    Accepted,
    Given,
    Hold,
    NeedsPerson,
    Refused,
    Retry,
    Send,
    SettledElsewhere,
    SplitAgain,
    Wait,
)


def top(low: float, high: float) -> float:
    """The jitter at its top: delays are exact in the table."""
    return high


NOW = 1_800_000_000.0

STEPS = [
    # (last error, next attempt due, what happens now)
    (None, None, Send()),
    ("hub_unreachable", NOW - 1, Send()),
    ("hub_unreachable", NOW, Send()),
    ("insufficient_funds", NOW + 40, Wait(40)),
    ("month_not_ended", NOW + 3600, Wait(3600)),
    # An older version held a conflicting month for ever: it is sent again
    # (and the hub's answer now takes the other computer's month).
    ("settlement_conflict", None, Send()),
    ("settled_elsewhere", NOW + 60, Wait(60)),
    ("month_before_account", NOW - 10, Hold("month_before_account")),
]


@pytest.mark.parametrize(("error", "due", "step"), STEPS)
def test_when_a_closed_month_goes(error: str | None, due: float | None, step: object) -> None:
    assert policy.next_step(error, due, NOW) == step


def refused(code: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": "no", **extra}


MONTH_ANSWERS = [
    # (status, body, attempts, meaning)
    (201, {"receipt": "…"}, 1, Accepted()),
    (200, {"receipt": "…"}, 3, Accepted()),
    (None, "unreachable", 1, Retry("hub_unreachable", "unreachable", 5.0, "submitted")),
    (None, "unreachable", 4, Retry("hub_unreachable", "unreachable", 40.0, "submitted")),
    (None, "unreachable", 30, Retry("hub_unreachable", "unreachable", 3600.0, "submitted")),
    (
        402,
        refused("insufficient_funds", balance_cents=100),
        2,
        Retry("insufficient_funds", "no", 10.0, "closed"),
    ),
    (
        409,
        refused("month_not_ended", retry_after=900, settle_from="2026-12-01T12:00:00Z"),
        1,
        # retry_after, plus the spread over at most 5 minutes (here its top)
        Retry("month_not_ended", "no", 900 + 300, "closed"),
    ),
    (
        409,
        refused("month_not_ended"),  # no retry_after: the usual back-off
        1,
        Retry("month_not_ended", "no", 5.0, "closed"),
    ),
    (409, refused("settlement_conflict"), 1, SettledElsewhere("no", 5.0)),
    (409, refused("settlement_conflict"), 4, SettledElsewhere("no", 40.0)),
    (409, refused("month_before_account"), 7, NeedsPerson("month_before_account", "no")),
    (409, refused("own_key", keys=["domain:me.example", 5]), 1, SplitAgain(("domain:me.example",))),
    (409, refused("own_key", keys=[]), 1, Retry("own_key", "no", 5.0, "closed")),
    (500, "<html>proxy error</html>", 1, Retry("500", "", 5.0, "closed")),
    (401, refused("stale"), 2, Retry("stale", "no", 10.0, "closed")),
]  # fmt: skip


@pytest.mark.parametrize(("status", "data", "attempts", "meaning"), MONTH_ANSWERS)
def test_what_an_answer_to_a_settlement_means(
    status: int | None, data: Any, attempts: int, meaning: object
) -> None:
    assert policy.month_answer(status, data, attempts=attempts, uniform=top) == meaning


def test_the_spread_after_month_not_ended_scales_with_the_retry_base() -> None:
    """Tests shorten the back-off; the spread shrinks with it (60 × the base)."""
    data = refused("month_not_ended", retry_after=10)
    got = policy.month_answer(409, data, attempts=1, retry_base=0.5, uniform=top)
    assert isinstance(got, Retry) and got.seconds == 10 + 30


def test_the_back_off_has_jitter_below_the_full_delay() -> None:
    delays = {policy.retry_delay(3) for _ in range(50)}
    assert len(delays) > 1 and all(16.0 <= d <= 20.0 for d in delays)


TRANSFER_ANSWERS = [
    (201, {"receipt": "…"}, 1, Given()),
    (200, {"receipt": "…"}, 2, Given()),
    (None, "down", 1, Retry("hub_unreachable", "down", 5.0, "sending")),
    (503, refused("hub_unreachable"), 2, Retry("hub_unreachable", "no", 10.0, "sending")),
    (402, refused("insufficient_funds"), 1, Refused("insufficient_funds", "no")),
    (409, refused("own_key", keys=["x"]), 1, Refused("own_key", "no")),
    (400, refused("invalid"), 1, Refused("invalid", "no")),
    (400, ["not", "an", "object"], 1, Refused("400", "")),
]  # fmt: skip


@pytest.mark.parametrize(("status", "data", "attempts", "meaning"), TRANSFER_ANSWERS)
def test_what_an_answer_to_a_transfer_means(
    status: int | None, data: Any, attempts: int, meaning: object
) -> None:
    assert policy.transfer_answer(status, data, attempts=attempts, uniform=top) == meaning
