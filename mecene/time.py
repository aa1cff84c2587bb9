"""The one clock the daemon reads, and month arithmetic in the person's time zone.

Months are strings "YYYY-MM"; they sort in time order.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def elapsed(self) -> float:
        """Seconds that really passed, on a clock nobody sets: a change of the
        wall clock does not move it, a suspended laptop's sleep does."""
        ...


def _uptime() -> float:
    """Seconds since boot, suspend included (Linux's CLOCK_BOOTTIME, read
    from /proc/uptime: a file, which time-faking libraries leave alone, as
    setting the date does); elsewhere, the monotonic clock."""
    try:
        with open("/proc/uptime", "rb") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return time.monotonic()


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def elapsed(self) -> float:
        return _uptime()


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self.at = at
        self._elapsed = 0.0

    def now(self) -> dt.datetime:
        return self.at

    def elapsed(self) -> float:
        return self._elapsed

    def set(self, at: dt.datetime) -> None:
        """Time passes until `at` (a move back: the clock is set back)."""
        self._elapsed += max(0.0, (at - self.at).total_seconds())
        self.at = at

    def advance(self, **delta: float) -> None:
        self.set(self.at + dt.timedelta(**delta))

    def jump(self, at: dt.datetime) -> None:
        """Someone sets the clock to `at`: no time passes."""
        self.at = at


def timestamp(at: dt.datetime) -> str:
    """A sortable UTC timestamp with microseconds: 2026-10-01T10:00:00.000000Z."""
    # isoformat is C code and several times faster than strftime.
    return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def timestamp_at(seconds: float) -> str:
    """`timestamp` of a Unix time."""
    return timestamp(dt.datetime.fromtimestamp(seconds, dt.UTC))


def seconds_at(stamp: str) -> float:
    """The Unix time of a `timestamp`."""
    return dt.datetime.fromisoformat(stamp.rstrip("Z")).replace(tzinfo=dt.UTC).timestamp()


def zone(name: str) -> ZoneInfo:
    """The named IANA time zone; ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def month_of(at: dt.datetime, tz: str) -> str:
    local = at.astimezone(zone(tz))
    return f"{local.year:04d}-{local.month:02d}"


def parse_month(text: str) -> tuple[int, int]:
    m = MONTH_RE.match(text)
    if not m:
        raise ValueError(f"not a month (YYYY-MM): {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_months(month: str, count: int) -> str:
    year, mon = parse_month(month)
    index = year * 12 + (mon - 1) + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Every month from `first` to `last`, both included (empty if first > last)."""
    out: list[str] = []
    month = first
    while month <= last:
        out.append(month)
        month = add_months(month, 1)
    return out


def day_start(at: dt.datetime, tz: str) -> dt.datetime:
    """The start of `at`'s day in the zone `tz` (midnight there), as an aware datetime."""
    local = at.astimezone(zone(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(month: str, tz: str) -> dt.datetime:
    """The first instant of `month` in `tz`, as UTC."""
    year, mon = parse_month(month)
    return dt.datetime(year, mon, 1, tzinfo=zone(tz)).astimezone(dt.UTC)


# The last time zone to leave a month behind: UTC−12 (Baker Island). A month
# has ended everywhere once the next one has begun there.
LAST_TIME_ZONE = "Etc/GMT+12"


def month_ended_everywhere(month: str) -> dt.datetime:
    """The instant `month` has ended in every time zone: the next month's
    first midnight in UTC−12, i.e. its first day at 12:00 UTC."""
    return month_start(add_months(month, 1), LAST_TIME_ZONE)


def seconds_to_next_month(at: dt.datetime, tz: str) -> float:
    nxt = month_start(add_months(month_of(at, tz), 1), tz)
    return max(0.0, (nxt - at).total_seconds())
