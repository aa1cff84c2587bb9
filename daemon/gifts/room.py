"""Gifts, the driver: record one durably before it is sent, quote one
before the person confirms, list them, and record what the hub answered."""

from __future__ import annotations

import logging
from typing import Any

from sqlite_utils import Database

from mecene.amounts import euros
from mecene.time import day_start, timestamp

from ..creators.policy import not_own
from ..creators.room import Creators
from ..errors import IdConflict, NotFound
from ..months.room import Months
from ..session import Session
from ..unlinkable import policy as tokens_policy
from ..validate import TransferRequest
from . import policy, sql
from .views import transfer_json

log = logging.getLogger("mecene")


class Gifts:
    def __init__(self, session: Session, months: Months, creators: Creators) -> None:
        self.session = session
        self.months = months
        self.creators = creators

    async def record(
        self, req: TransferRequest, *, from_browser: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Record a direct transfer durably, before it is sent (the hub link
        sends it): (transfer, created). The same id again returns it as it is;
        with another body, `id_conflict`. Refused before anything is recorded:
        a locked wallet, an amount out of bounds, one's own key, more than the
        balance. Asked for by a browser past the browsers' daily limit, it is
        recorded `waiting`: the person confirms it (`confirm`) or not."""
        wallet = await self.months.open_wallet()
        not_own(wallet.settings.own_creators, req.creator)
        policy.in_bounds(req.cents)
        month = self.months.open_month or self.session.current_month()
        at = timestamp(self.session.now())
        unlinked = wallet.settings.unlinkable
        if unlinked:
            tokens_policy.gift_tokens(req.cents)  # whole tokens, or Invalid
        url = policy.url_sent(req.url, private=wallet.settings.private, unlinkable=unlinked)
        balance = self.session.balance_cents
        now = self.session.now()
        today = timestamp(day_start(now, wallet.settings.time_zone))
        limit = wallet.settings.browser_gift_limit_cents

        def record(db: Database) -> tuple[Any, bool]:
            known = sql.get(db, req.id)
            if known is not None:
                if (known["creator"], known["cents"], known["url"]) != (
                    req.creator,
                    req.cents,
                    url,
                ):
                    raise IdConflict("that transfer id was already used for another transfer")
                return known, False
            state = policy.GiftState.SENDING
            if from_browser and policy.waits_for_the_person(
                sql.from_browsers_since(db, today), req.cents, limit
            ):
                state = policy.GiftState.WAITING
            else:
                policy.admit(balance, sql.sending_cents(db), req.cents)
            sql.insert(
                db,
                {
                    "id": req.id,
                    "month": month,
                    "creator": req.creator,
                    "url": url,
                    "title": req.title,
                    "note": req.note,
                    "cents": req.cents,
                    "created_at": at,
                    "unlinkable": unlinked,
                    "state": state,
                    "from_browser": int(from_browser),
                },
            )
            return sql.get(db, req.id), True

        row, created = await self.session.store.write(record)
        if created:
            log.info(
                "transfer %s: %s to %s recorded%s",
                req.id,
                euros(req.cents),
                req.creator,
                " (over the browsers' daily limit: waits for the person)"
                if row["state"] == policy.GiftState.WAITING
                else "",
            )
        return transfer_json(row), created

    async def confirm(self, transfer_id: str) -> dict[str, Any]:
        """The person confirms a gift that waited for them: it goes out (the
        hub link sends it), if the balance allows it."""
        self.session.require_wallet()
        balance = self.session.balance_cents

        def confirm(db: Database) -> Any:
            row = sql.get(db, transfer_id)
            if row is None or row["state"] != policy.GiftState.WAITING:
                raise NotFound("no gift waits for confirmation with that id")
            policy.admit(balance, sql.sending_cents(db), row["cents"])
            sql.confirm(db, transfer_id)
            return sql.get(db, transfer_id)

        row = await self.session.store.write(confirm)
        log.info("transfer %s confirmed by the person", transfer_id)
        return transfer_json(row)

    async def cancel(self, transfer_id: str) -> dict[str, Any]:
        """The person declines a gift that waited for them: nothing is sent."""

        def cancel(db: Database) -> Any:
            row = sql.get(db, transfer_id)
            if row is None or row["state"] != policy.GiftState.WAITING:
                raise NotFound("no gift waits for confirmation with that id")
            sql.cancel(db, transfer_id)
            return sql.get(db, transfer_id)

        return transfer_json(await self.session.store.write(cancel))

    def quote(self, creator: str, cents: int) -> dict[str, Any]:
        """What `creator` would receive of `cents` (daemon/gifts/policy.py)."""
        wallet = self.session.require_wallet()
        not_own(wallet.settings.own_creators, creator)
        policy.in_bounds(cents)
        if wallet.settings.unlinkable:
            tokens_policy.gift_tokens(cents)  # whole tokens, or Invalid
        return policy.quote(
            creator,
            cents,
            joined=self.creators.joined,
            unlinkable=wallet.settings.unlinkable,
            balance_cents=self.session.balance_cents,
        )

    async def listed(self, month: str | None = None) -> list[dict[str, Any]]:
        self.session.require_wallet()
        if month is None:
            rows = await self.session.store.read(sql.every)
        else:
            rows = await self.session.store.read(lambda db: sql.of_month(db, month))
        return [transfer_json(r) for r in rows]

    async def get(self, transfer_id: str) -> dict[str, Any]:
        row = await self.session.store.read(lambda db: sql.get(db, transfer_id))
        if row is None:
            raise NotFound("no such transfer")
        return transfer_json(row)

    async def sending(self) -> list[dict[str, Any]]:
        """Transfers recorded and not yet answered by the hub, oldest first."""
        return [transfer_json(r) for r in await self.session.store.read(sql.sending)]

    async def mark(self, transfer_id: str, **fields: Any) -> dict[str, Any]:
        """Record how sending a transfer went (hub link); a transfer given or
        refused is final."""

        def mark(db: Database) -> Any:
            sql.mark(db, transfer_id, fields)
            return sql.get(db, transfer_id)

        return transfer_json(await self.session.store.write(mark))
