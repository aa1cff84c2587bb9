"""Whether the wall clock can be trusted to close a month (DESIGN.md, "The
wallet over a machine's life": time). Pure: the driver (months/room.py)
feeds it readings and asks it before it closes a month.

A month closes only when the clock can be trusted:
- **A jump while running.** The wall clock is compared with a clock nobody
  sets (`Clock.elapsed()`: time since boot, suspend included). A forward
  jump the elapsed clock did not see — someone set the date, a bad time
  server — holds month closes until the person confirms the date or the
  clock comes back to where it should be.
- **The hub's time.** Every answer from the hub carries its time (the HTTP
  `Date`). A local clock more than an hour ahead of it holds month closes
  (the hub would refuse an early settlement anyway, and months closed early
  charge subscriptions early). With a hub other than the embedded one,
  month closes also wait, after a start, for the hub's time to be seen
  once: across a restart the elapsed clock proves nothing (the computer may
  have been off for months). A clock that is merely behind the hub's never
  holds anything.
- **A clock set back** below the open month never refuses a flattr: flattrs
  go into the open month, and the person is told to set the clock right.

Only a hold is ever the outcome: the worst a lying hub or a wrong clock can
do is delay a month's close.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

JUMP_TOLERANCE = dt.timedelta(minutes=10)  # NTP steps, slow reads: never a jump
HUB_AHEAD_LIMIT = dt.timedelta(hours=1)


@dataclass
class ClockWatch:
    needs_hub: bool = False  # a hub other than the embedded one
    anchor: tuple[dt.datetime, float] | None = None  # (wall, elapsed) last trusted
    jumped: tuple[dt.datetime, dt.datetime] | None = None  # (expected wall, wall seen)
    hub_seen: bool = False
    hub_ahead: dt.timedelta | None = None  # how far the local clock is ahead of the hub's
    confirmed: bool = False  # the person said the date is right (this run)

    def observe(self, wall: dt.datetime, elapsed: float) -> None:
        """A reading of both clocks."""
        if self.anchor is None:
            self.anchor = (wall, elapsed)
            return
        anchor_wall, anchor_elapsed = self.anchor
        expected = anchor_wall + dt.timedelta(seconds=elapsed - anchor_elapsed)
        drift = wall - expected
        if self.jumped is not None:
            if abs(drift) <= JUMP_TOLERANCE:  # the clock is right again
                self.jumped = None
                self.anchor = (wall, elapsed)
            return  # else: keep the anchor, to know when it comes back
        if drift > JUMP_TOLERANCE and not self.confirmed:
            self.jumped = (expected, wall)
            return
        self.anchor = (wall, elapsed)  # time passed as it should, or the clock went back

    def hub_time(self, wall: dt.datetime, hub: dt.datetime) -> None:
        """The hub's time, read from one of its answers."""
        self.hub_seen = True
        ahead = wall - hub
        self.hub_ahead = ahead if ahead > HUB_AHEAD_LIMIT else None

    def confirm(self, wall: dt.datetime, elapsed: float) -> None:
        """The person says the date is right: months close again, this run."""
        self.confirmed = True
        self.jumped = None
        self.hub_ahead = None
        self.hub_seen = True
        self.anchor = (wall, elapsed)

    def hold(self) -> str | None:
        """Why no month may close now (a sentence for the person), or None."""
        if self.jumped is not None:
            expected, seen = self.jumped
            return (
                f"the computer's clock jumped from {_day(expected)} to {_day(seen)} while "
                "Mécène ran: no month closes until you confirm the date, or set the clock right"
            )
        if self.hub_ahead is not None and not self.confirmed:
            return (
                f"the computer's clock is {_span(self.hub_ahead)} ahead of the hub's: no month "
                "closes until you set the clock right (automatic date and time), or confirm the "
                "date"
            )
        if self.needs_hub and not self.hub_seen and not self.confirmed:
            return "waiting for the hub, to check the computer's clock before a month closes"
        return None


def behind(clock_month: str, open_month: str | None) -> str | None:
    """The sentence for a clock that reads a month before the open one."""
    if open_month is None or clock_month >= open_month:
        return None
    return (
        f"the computer's clock reads {clock_month}, but {open_month} is open (the clock was "
        f"ahead before): flattrs go into {open_month}. Set the clock right (automatic date "
        "and time)"
    )


def _day(at: dt.datetime) -> str:
    return f"{at.day} {at:%B %Y %H:%M} UTC"


def _span(delta: dt.timedelta) -> str:
    days = delta.days
    if days >= 2:
        return f"{days} days"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} hours" if hours != 1 else "1 hour"
