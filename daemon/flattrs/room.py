"""Flattrs and subscriptions, the driver: each method checks with the month
room that the month is open, runs its statements (daemon/flattrs/sql.py) in
one write and answers with the month's status."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlite_utils import Database

from mecene.time import add_months, timestamp

from ..creators.policy import not_own
from ..errors import IdConflict, MonthClosed, NotFound, SubscriptionOver
from ..months import sql as months_sql
from ..months.policy import takes_flattrs
from ..months.room import Months
from ..session import Session
from ..validate import ClickRequest, SubscriptionChange, SubscriptionRequest
from . import policy, sql


def click_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "month": row["month"],
        "url": row["url"],
        "title": row["title"],
        "creator": row["creator"],
        "creators": json.loads(row["creators"] or "[]"),
        "weight": row["weight"],
        "auto": bool(row["auto"]),
        "subscription": row["subscription_id"],
        "created_at": row["created_at"],
        "undone": row["undone_at"] is not None,
    }


def subscription_json(row: Any, month: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "creator": row["creator"],
        "title": row["title"],
        "months": row["months"],
        "first_month": row["first_month"],
        "last_month": row["last_month"],
        "created_at": row["created_at"],
        "cancelled_month": row["cancelled_month"],
        "weight": row["weight"],
        "state": policy.subscription_state(row["cancelled_month"], row["last_month"], month),
    }


class Flattrs:
    def __init__(self, session: Session, months: Months) -> None:
        self.session = session
        self.months = months

    async def record_click(self, req: ClickRequest) -> tuple[dict[str, Any], bool, dict[str, Any]]:
        """Record a flattr. Returns (click, created, status); the same client id
        again returns the same click with created=False."""
        wallet = await self.months.open_wallet()
        not_own(wallet.settings.own_creators, req.creator)
        now = self.session.now()
        month = self.months.open_month or self.session.current_month()
        at = timestamp(now)
        creators = json.dumps(list(req.creators), separators=(",", ":")) if req.creators else "[]"
        row = {
            "id": req.id,
            "month": month,
            "url": req.url,
            "title": req.title,
            "creator": req.creator,
            "creators": creators,
            "weight": req.weight,
            "auto": 0,
            "subscription_id": None,
            "created_at": at,
            "undone_at": None,
        }

        def record(db: Database) -> tuple[Any, bool, int, int, int]:
            # One writing statement on the common path: the unique indexes
            # answer "was this id seen?" and "was this thing flattred this
            # month?", and the lookups run only when the insert is refused.
            try:
                inserted = sql.insert_click(db, row)
            except sql.IntegrityError:
                same = sql.live_click_for(db, month, req.url)
                existing = policy.refused_click(
                    sql.click(db, req.id),
                    None if same is None else click_json(same),
                    req.url,
                    req.creator,
                )
                return (existing, False, *months_sql.totals(db, existing["month"]))
            if not inserted:
                raise self.months.closed_error(db, month, now)
            return (row, True, *months_sql.totals(db, month))

        done, created, count, weight, given = await self.session.store.write(
            record, savepoint=False
        )
        status = self.months.status_of(month, count, weight, given)
        return click_json(done), created, status

    async def undo_click(self, click_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        await self.months.open_wallet()
        at = timestamp(self.session.now())

        def undo(db: Database) -> tuple[Any, int, int, int]:
            row = sql.click(db, click_id)
            if row is None:
                raise NotFound("no such click")
            if not takes_flattrs(months_sql.state(db, row["month"])):
                raise MonthClosed(f"{row['month']} is closed: its flattrs can no longer be undone")
            sql.undo(db, click_id, at)
            row = sql.click(db, click_id)
            return (row, *months_sql.totals(db, row["month"]))

        row, count, weight, given = await self.session.store.write(undo)
        return click_json(row), self.months.status_of(row["month"], count, weight, given)

    async def clicks(self, month: str | None) -> dict[str, Any]:
        await self.months.open_wallet()
        month = month or self.session.current_month()
        rows = await self.session.store.read(lambda db: sql.live_clicks(db, month))
        return {"month": month, "clicks": [click_json(r) for r in rows]}

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(self, req: SubscriptionRequest) -> tuple[dict[str, Any], bool]:
        wallet = await self.months.open_wallet()
        not_own(wallet.settings.own_creators, req.creator)
        month = self.session.current_month()
        at = timestamp(self.session.now())
        sub_id = req.id or str(uuid.uuid4())
        paused = wallet.settings.subscriptions_paused
        first, last = policy.subscription_span(month, req.months)

        def subscribe(db: Database) -> tuple[Any, bool]:
            existing = sql.subscription(db, sub_id)
            if existing is not None:
                if existing["creator"] != req.creator or existing["url"] != req.url:
                    raise IdConflict("that subscription id was already used")
                return existing, False
            # Never two for one thing: the one there is (extend it instead).
            covering = sql.covering(db, req.url, req.creator, month)
            if covering is not None:
                return covering, False
            weight = req.weight
            if weight is None:  # the thing's weight this month, else 1
                live = sql.live_click_for(db, month, req.url) if req.url else None
                weight = live["weight"] if live is not None else 1
            sql.insert_subscription(
                db,
                {
                    "id": sub_id,
                    "url": req.url,
                    "creator": req.creator,
                    "title": req.title,
                    "months": req.months,
                    "first_month": first,
                    "last_month": last,
                    "created_at": at,
                    "weight": weight,
                },
            )
            if not paused:
                sql.place_subscription_clicks(db, month, at)
            return sql.subscription(db, sub_id), True

        row, created = await self.session.store.write(subscribe)
        return subscription_json(row, month), created

    async def subscriptions(self) -> list[dict[str, Any]]:
        self.session.require_wallet()
        month = self.session.current_month()
        rows = await self.session.store.read(sql.subscriptions)
        return [subscription_json(r, month) for r in rows]

    async def change_subscription(self, sub_id: str, change: SubscriptionChange) -> dict[str, Any]:
        """A new weight for the flattrs it places from now on (this month's,
        already placed, keeps its own: reweight it like any flattr), and/or
        `extend` more months after its last. A cancelled or finished one
        cannot change: subscribe again."""
        await self.months.open_wallet()
        month = self.session.current_month()
        at = timestamp(self.session.now())

        def change_it(db: Database) -> Any:
            row = sql.subscription(db, sub_id)
            if row is None:
                raise NotFound("no such subscription")
            state = policy.subscription_state(row["cancelled_month"], row["last_month"], month)
            if state != policy.SubscriptionState.ACTIVE:
                raise SubscriptionOver(f"this subscription is {state}: subscribe again")
            weight = row["weight"] if change.weight is None else change.weight
            last = row["last_month"]
            if change.extend is not None:
                last = add_months(last, change.extend)
            sql.change_subscription(db, sub_id, weight, last, at)
            return sql.subscription(db, sub_id)

        return subscription_json(await self.session.store.write(change_it), month)

    async def cancel_subscription(self, sub_id: str) -> dict[str, Any]:
        """Stop future automatic clicks; this month's click stays (undo it separately)."""
        await self.months.open_wallet()
        month = self.session.current_month()
        at = timestamp(self.session.now())

        def cancel(db: Database) -> Any:
            if sql.subscription(db, sub_id) is None:
                raise NotFound("no such subscription")
            sql.cancel_subscription(db, sub_id, policy.cancelled_from(month), at)
            return sql.subscription(db, sub_id)

        return subscription_json(await self.session.store.write(cancel), month)
