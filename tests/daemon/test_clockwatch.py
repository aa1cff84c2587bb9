"""When the clock may close a month (daemon/months/clockwatch.py), as a
table, and through the local API with a clock that jumps (issue 26)."""

from __future__ import annotations

import datetime as dt

import pytest

from daemon.months.clockwatch import ClockWatch, behind
from mecene.time import FrozenClock
from tests.support.daemons import Api

T0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
HOUR = 3600.0


def at(**delta: float) -> dt.datetime:
    return T0 + dt.timedelta(**delta)


@pytest.mark.parametrize(
    ("readings", "held"),
    [
        # (wall, elapsed) readings in order → held or not after the last
        ([(at(), 0), (at(hours=5), 5 * HOUR)], False),  # time passed
        ([(at(), 0), (at(days=3), 3 * 24 * HOUR)], False),  # a laptop asleep: boot time counts it
        ([(at(), 0), (at(minutes=9), 0)], False),  # within the tolerance (a time server's step)
        ([(at(), 0), (at(days=90), 60)], True),  # set 90 days ahead
        ([(at(), 0), (at(days=90), 60), (at(minutes=2), 120)], False),  # and set right again
        ([(at(), 0), (at(days=90), 60), (at(days=90, minutes=5), 360)], True),  # still ahead
        ([(at(), 0), (at(days=-30), 60)], False),  # set back: never a hold
        ([(at(), 0), (at(days=-30), 60), (at(days=-30, hours=1), HOUR + 60)], False),
    ],
)
def test_a_jump_the_boot_clock_did_not_see_holds_month_closes(
    readings: list[tuple[dt.datetime, float]], held: bool
) -> None:
    watch = ClockWatch()
    for wall, elapsed in readings:
        watch.observe(wall, elapsed)
    assert (watch.hold() is not None) is held


def test_the_person_confirms_the_date_and_a_later_jump_is_ignored_this_run() -> None:
    watch = ClockWatch()
    watch.observe(at(), 0)
    watch.observe(at(days=90), 10)
    assert "jumped from 2 December 2026 12:00 UTC to 2 March 2027" in (watch.hold() or "")
    watch.confirm(at(days=90), 10)
    assert watch.hold() is None
    watch.observe(at(days=91), 20)
    assert watch.hold() is None


@pytest.mark.parametrize(
    ("needs_hub", "hub_delta", "held"),
    [
        (False, None, False),  # the embedded hub: its clock is ours
        (True, None, True),  # another hub, not heard from since the start
        (True, dt.timedelta(0), False),
        (True, dt.timedelta(minutes=50), False),  # a little ahead: fine
        (True, dt.timedelta(days=90), True),  # 90 days ahead of the hub
        (True, -dt.timedelta(days=90), False),  # behind the hub: never a hold
    ],
)
def test_the_hubs_time_holds_a_clock_that_runs_ahead(
    needs_hub: bool, hub_delta: dt.timedelta | None, held: bool
) -> None:
    watch = ClockWatch(needs_hub=needs_hub)
    watch.observe(at(), 0)
    if hub_delta is not None:
        watch.hub_time(at(), at() - hub_delta)
    reason = watch.hold()
    assert (reason is not None) is held
    if hub_delta == dt.timedelta(days=90):
        assert reason is not None and "90 days ahead of the hub's" in reason


def test_a_clock_behind_the_open_month_is_named() -> None:
    assert behind("2026-12", "2026-12") is None
    assert behind("2027-01", "2026-12") is None
    said = behind("2026-12", "2027-03")
    assert said is not None and said.startswith("the computer's clock reads 2026-12, but 2027-03")


# -- through the API ---------------------------------------------------------------------


async def test_a_clock_set_three_months_ahead_while_running_closes_nothing(
    api: Api, clock: FrozenClock
) -> None:
    """The embedded-hub case of issue 26: +3 months while running settled
    December early and charged a subscription for each month. Now nothing
    closes, flattrs go on into the open month, and the status says why."""
    start = clock.now()
    month = (await api.call("GET", "/status", expect=200))["month"]
    await api.click("https://example.org/a")
    clock.jump(start + dt.timedelta(days=92))
    status = await api.call("GET", "/status", expect=200)
    assert status["clock"]["state"] == "held" and "jumped" in status["clock"]["message"]
    assert status["month"] == month
    taken = await api.click("https://example.org/b")
    assert taken["click"]["month"] == month
    months = (await api.call("GET", "/months", expect=200))["months"]
    assert [m["state"] for m in months] == ["open"]
    # Set right again: the hold ends by itself, nothing was closed.
    clock.jump(start + dt.timedelta(minutes=5))
    status = await api.call("GET", "/status", expect=200)
    assert status["clock"] == {"state": "ok", "message": None}
    assert status["clicks"] == 2


async def test_confirming_the_date_closes_the_months_that_ended(
    api: Api, clock: FrozenClock
) -> None:
    month = (await api.call("GET", "/status", expect=200))["month"]
    await api.click("https://example.org/a")
    clock.jump(clock.now() + dt.timedelta(days=40))
    assert (await api.call("GET", "/status", expect=200))["clock"]["state"] == "held"
    out = await api.call("POST", "/clock/confirm", {}, token="admin", expect=200)
    assert out["clock"]["state"] == "ok"
    months = {
        m["month"]: m["state"] for m in (await api.call("GET", "/months", expect=200))["months"]
    }
    assert months[month] == "closed"
    assert (await api.call("GET", "/status", expect=200))["month"] > month
