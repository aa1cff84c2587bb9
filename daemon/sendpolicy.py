"""When the daemon sends a month or a transfer to the hub, and what each answer
means: pure, no sockets, no database (tests/daemon/test_sendpolicy.py is a table).

daemon/hublink.py is the thin part around it: it asks `next_step` whether a
closed month goes now, sends it, asks `month_answer` (or `transfer_answer`)
what the hub's answer means, and records that.

A month goes `closed → submitted → settled`. `submitted` is written before
the settlement leaves, so after a crash or a lost answer the daemon knows it
may have arrived and sends it again (the hub answers a repeat with the same
receipt). While the hub is unreachable, or refuses for want of money (a
deposit can fix that), the daemon retries with exponential back-off (5 s
doubling to an hour, with jitter). A month that has not ended in every time
zone is sent again when the hub says it may be, spread over a few minutes. A
settlement that pays the person's own keys is split again without them. A
month the hub already holds another document for was settled by another
computer of the same wallet (DESIGN.md, "Devices"): its month is taken from
the wallet's records, looked for again with the same back-off until it is
there. A month older than the account waits for a person.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 3600.0
# When the hub says when a month may be settled, daemons come back spread
# over this many seconds at most (every daemon hears the same time).
SPREAD_SECONDS = 300.0

# Refusals that sending again cannot change: the month stays closed, shown
# with its reason, until a person acts.
NEEDS_A_PERSON = frozenset({"month_before_account"})
# Transfer refusals are final (the person sees them) unless the hub failed.

Uniform = Callable[[float, float], float]


def retry_delay(
    attempts: int, base: float = RETRY_BASE_SECONDS, uniform: Uniform = random.uniform
) -> float:
    """Seconds before the next attempt after `attempts` failures: `base`
    doubling to an hour, less up to 20 % of jitter so daemons do not march in step."""
    delay: float = min(RETRY_MAX_SECONDS, base * 2.0 ** max(0, attempts - 1))
    return delay * uniform(0.8, 1.0)


# -- a closed month: send it now? ---------------------------------------------------------


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Hold:
    """Not sent until a person acts (the reason is shown with the month)."""

    code: str


def next_step(sync_error: str | None, next_sync_at: float | None, now: float) -> Send | Wait | Hold:
    """What to do now with an unsent month, from its last error and the time
    its next attempt is due (Unix seconds, None for at once)."""
    if sync_error in NEEDS_A_PERSON:
        return Hold(sync_error)
    if next_sync_at is not None and next_sync_at > now:
        return Wait(next_sync_at - now)
    return Send()


# -- what the hub's answer to a settlement means ------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """Check the receipt; if it holds, the month is settled."""


@dataclass(frozen=True)
class Retry:
    code: str
    message: str
    seconds: float
    state: str  # `submitted` if it may have arrived, else `closed`


@dataclass(frozen=True)
class NeedsPerson:
    code: str
    message: str


@dataclass(frozen=True)
class SplitAgain:
    """The settlement pays these keys of the person's own: split the month
    again without them, sign it anew and send that."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class SettledElsewhere:
    """Another computer of this wallet settled the month with its own
    document: take that month from the wallet's records; if they do not
    have it yet, look again after `seconds`."""

    message: str
    seconds: float


def month_answer(
    status: int | None,
    data: Any,
    *,
    attempts: int,
    retry_base: float = RETRY_BASE_SECONDS,
    uniform: Uniform = random.uniform,
) -> Accepted | Retry | NeedsPerson | SplitAgain | SettledElsewhere:
    """The meaning of the hub's answer to a settlement sent for the
    `attempts`-th time; `status` None when the hub could not be reached."""
    if status is None:
        message = data if isinstance(data, str) else "the hub is unreachable"
        return failed("hub_unreachable", message, attempts, "submitted", retry_base, uniform)
    if status in (200, 201):
        return Accepted()
    code, message = refusal(status, data)
    if code in NEEDS_A_PERSON:
        return NeedsPerson(code, message)
    if code == "settlement_conflict":
        return SettledElsewhere(message, retry_delay(attempts, retry_base, uniform))
    if code == "month_not_ended" and _whole(data.get("retry_after")):
        # Not an error: the month has not ended in every time zone yet. Come
        # back then, spread over a few minutes as every daemon will.
        spread = uniform(0, min(SPREAD_SECONDS, retry_base * 60))
        return Retry(code, message, max(1, data["retry_after"]) + spread, "closed")
    if code == "own_key" and isinstance(data.get("keys"), list):
        keys = tuple(k for k in data["keys"] if isinstance(k, str))
        if keys:
            return SplitAgain(keys)
    return failed(code, message, attempts, "closed", retry_base, uniform)


def failed(
    code: str,
    message: str,
    attempts: int,
    state: str,
    retry_base: float = RETRY_BASE_SECONDS,
    uniform: Uniform = random.uniform,
) -> Retry:
    """Try again after the back-off for the `attempts`-th failure."""
    return Retry(code, message, retry_delay(attempts, retry_base, uniform), state)


def refusal(status: int, data: Any) -> tuple[str, str]:
    """(code, message) of an error answer, in the shared envelope or not."""
    if isinstance(data, dict):
        code, message = data.get("error"), data.get("message")
        return (code if isinstance(code, str) else str(status)), (
            message if isinstance(message, str) else ""
        )
    return str(status), ""


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- what the hub's answer to a direct transfer means -------------------------------------


@dataclass(frozen=True)
class Given:
    """Check the receipt; if it holds, the transfer is given."""


@dataclass(frozen=True)
class Refused:
    """Final: shown to the person with its reason."""

    code: str
    message: str


def transfer_answer(
    status: int | None,
    data: Any,
    *,
    attempts: int,
    retry_base: float = RETRY_BASE_SECONDS,
    uniform: Uniform = random.uniform,
) -> Given | Refused | Retry:
    """The meaning of the hub's answer to a transfer sent for the
    `attempts`-th time; `status` None when the hub could not be reached."""
    if status is None:
        message = data if isinstance(data, str) else "the hub is unreachable"
        return failed("hub_unreachable", message, attempts, "sending", retry_base, uniform)
    if status in (200, 201):
        return Given()
    code, message = refusal(status, data)
    if status >= 500:
        return failed(code, message, attempts, "sending", retry_base, uniform)
    return Refused(code, message)
