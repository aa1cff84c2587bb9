"""Flattrs' and subscriptions' rules (pure: no clock, no database).

A flattr is one live click per thing per month (a creator subscription: one
per creator per month); its client's id makes sending it again harmless. A
subscription of N months spans the month it is made in and the N-1 after;
cancelled, it places nothing from the next month on.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from mecene.time import add_months

from ..errors import FlattrOnce, IdConflict

SUBSCRIPTION_NS = uuid.UUID("6d656365-6e65-4d65-8e65-737562736372")


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    FINISHED = "finished"
    CANCELLED = "cancelled"


def subscription_click_id(sub_id: str, month: str) -> str:
    """The automatic click's id: the same for a subscription and a month, so
    placing it twice places it once."""
    return str(uuid.uuid5(SUBSCRIPTION_NS, f"{sub_id}/{month}"))


def subscription_span(month: str, months: int) -> tuple[str, str]:
    """The first and last month of a subscription of `months` made in `month`."""
    return month, add_months(month, months - 1)


def subscription_state(cancelled_month: str | None, last_month: str, month: str) -> str:
    if cancelled_month is not None:
        return SubscriptionState.CANCELLED
    if last_month < month:
        return SubscriptionState.FINISHED
    return SubscriptionState.ACTIVE


def cancelled_from(month: str) -> str:
    """Cancelled now: from next month on (this month's click is placed)."""
    return add_months(month, 1)


def refused_click(existing: Any, same_thing: Any, url: str | None, creator: str) -> Any:
    """What a click refused by a unique index means: the same id again (that
    click, unchanged), an id used for another flattr (IdConflict), or the
    same thing this month (FlattrOnce, with that month's live click)."""
    if existing is not None:
        if existing["url"] != url or existing["creator"] != creator:
            raise IdConflict("that click id was already used for another flattr")
        return existing
    if same_thing is None:  # no other unique index can refuse a new click
        raise RuntimeError("a click refused by an unexpected constraint")
    raise FlattrOnce("you already flattred this page this month", click=same_thing)
