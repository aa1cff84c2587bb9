"""The month, the driver: opens the current month and closes the past ones
(in order, each in one transaction), answers the month's status and views,
and records what the hub link learns of a closed month."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from mecene.amounts import euros
from mecene.money import CURRENCY
from mecene.time import add_months, month_of, month_start, timestamp

from .. import budget
from ..errors import ClockBehind, DomainError, Invalid, MonthClosed, NotFound
from ..flattrs import sql as flattrs_sql
from ..gifts import sql as gifts_sql
from ..gifts.views import transfer_json
from ..session import Session
from ..settlement import settlement_document
from ..unlinkable import policy as tokens_policy
from ..unlinkable import sql as tokens_sql
from ..wallet import Settings, Wallet
from . import policy, sql
from .clockwatch import ClockWatch, behind

log = logging.getLogger("mecene")


# While month closes are held, the clock is looked at again this often.
HOLD_RECHECK = dt.timedelta(seconds=60)


# Meta: when each setting last changed, {name: timestamp}.
SETTINGS_CHANGED = "settings_changed"


class Months:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.watch = ClockWatch()  # whether the clock may close a month
        self.open_month: str | None = None
        self._open_until: dt.datetime | None = None  # when the open month ends
        self._roll_lock = asyncio.Lock()
        # Called when months close or the wallet is unlocked (the hub link sends them).
        self.on_months_closed: Callable[[], None] | None = None
        # The creators on Mécène (the creators room's copy of the hub's list),
        # None while unknown: where a month's redeemed tokens are.
        self.joined_keys: Callable[[], frozenset[str] | None] = lambda: None

    def forget_open(self) -> None:
        """The open month must be found again (the wallet was locked, or its
        time zone changed)."""
        self.open_month = None
        self._open_until = None

    async def open_wallet(self) -> Wallet:
        """The unlocked wallet (else `Locked`), with the current month open and
        every past month closed: where each request about the month starts."""
        wallet = self.session.require_wallet()
        await self.roll()
        return wallet

    async def roll(self) -> list[str]:
        """Open the current month; first close, in order, every past month still open.

        Cheap when nothing changed (one comparison), so every request may call it.
        Returns the months it closed.
        """
        session = self.session
        if self._open_until is not None and session.now() < self._open_until:
            return []
        current = session.current_month()
        if current == self.open_month:
            return []
        async with self._roll_lock:
            now = session.now()
            current = session.current_month()
            if current == self.open_month:
                return []
            self.watch.observe(now, session.clock.elapsed())
            latest = await session.store.read(sql.latest_open)
            held = self.watch.hold()
            if held is not None or (latest is not None and current < latest):
                # The clock cannot be trusted, or reads a month before the open
                # one: nothing closes, and flattrs go into the open month.
                open_month = self.open_month or latest
                if open_month is None:
                    open_month = await session.store.write(lambda db: sql.open_first(db, current))
                self.open_month = open_month
                if held is not None:
                    log.warning("month close held: %s", held)
                    self._open_until = now + HOLD_RECHECK
                else:
                    tz = session.settings.time_zone
                    self._open_until = month_start(add_months(open_month, 1), tz)
                return []
            to_close = await session.store.write(lambda db: sql.open_until(db, current))
            for month in to_close:
                await self.close(month)
            if to_close and self.on_months_closed is not None:
                self.on_months_closed()
            at = timestamp(session.now())
            settings = session.settings
            if not settings.subscriptions_paused:
                await session.store.write(
                    lambda db: flattrs_sql.place_subscription_clicks(db, current, at)
                )
            self.open_month = current
            self._open_until = month_start(add_months(current, 1), settings.time_zone)
            return to_close

    async def close(self, month: str, *, again: bool = False) -> dict[str, Any] | None:
        """Close one past month: place its due subscription clicks, split, freeze, sign.

        All in one transaction: a crash leaves the month open or closed, never
        half-closed. Returns the signed document, or None if it was not open.
        Clicks on the person's own keys are left out (the hub refuses to pay
        them). `again`: sign a new split of a month the hub refused and never
        accepted (it learned of an own key since), as if it were still open.
        """
        wallet = self.session.require_wallet()
        settings = wallet.settings
        balance = self.session.balance_cents
        at = timestamp(self.session.now())
        own = set(settings.own_creators)

        def close(db: Database) -> tuple[dict[str, Any], int, int] | None:
            if not policy.closes(sql.state(db, month), again=again):
                return None
            if not settings.subscriptions_paused:
                flattrs_sql.place_subscription_clicks(db, month, at)
            clicks = [c for c in flattrs_sql.click_weights(db, month) if c.creator not in own]
            split = budget.split_budget(settings.rules, clicks, balance)
            # As tokens, whole ones only: the few cents left stay on the balance.
            spend = tokens_policy.spend(split.spend_cents) if settings.unlinkable else None
            doc = settlement_document(
                wallet.account,
                month,
                split.spend_cents if spend is None else spend,
                split.allocations,
                settings.private,
                unlinkable=settings.unlinkable,
            )
            text, signature = doc.sign(wallet.sign)
            # The tokens the spend will go as, planned with the month, in the
            # same transaction (none if it is not unlinkable).
            tokens_sql.plan(
                db, month, budget.by_creator(split.allocations) if doc.unlinkable else []
            )
            sql.close(db, month, doc.spend_cents, text, signature, at)
            # Counted from the split itself: an unlinkable or private
            # document names fewer (or no) things than were paid.
            paid = [a for a in split.allocations if a.cents > 0]
            return doc.as_json(), len(paid), len({a.creator for a in paid})

        closed = await self.session.store.write(close)
        if closed is None:
            return None
        doc, things, creators = closed
        log.info(
            "month %s closed: %s split between %d %s of %d %s%s",
            month,
            euros(doc["spend_cents"]),
            things,
            "thing" if things == 1 else "things",
            creators,
            "creator" if creators == 1 else "creators",
            " (unlinkable: as tokens)" if doc.get("unlinkable") else "",
        )
        return doc

    def closed_error(self, db: Database, month: str, now: dt.datetime) -> DomainError:
        """Why a flattr for `month` found it closed: it closed a moment ago
        (send it again), or the clock has moved back (ClockBehind)."""
        tz = self.session.settings.time_zone
        why = policy.clock_moved_back(month, sql.closed_at(db, month), now, month_of(now, tz), tz)
        if why is not None:
            return ClockBehind(why)
        return MonthClosed("the month has just closed; send the click again")

    async def place_subscriptions(self) -> None:
        """Place the open month's subscription clicks now (subscriptions
        brought back by a restore; idempotent, as at each month's roll)."""
        month = self.open_month
        if month is None or self.session.settings.subscriptions_paused:
            return
        at = timestamp(self.session.now())
        await self.session.store.write(
            lambda db: flattrs_sql.place_subscription_clicks(db, month, at)
        )

    async def update_settings(
        self, changes: dict[str, Any], *, changed_at: dict[str, str] | None = None
    ) -> Settings:
        """Change settings; when each changed is kept (SETTINGS_CHANGED), for
        the wallet's other computers: the later change of a setting wins.
        `changed_at`: the times another computer's record gave them."""
        wallet = self.session.require_wallet()
        before = wallet.settings.to_json()
        try:
            new = await asyncio.to_thread(wallet.update_settings, **changes)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        after = new.to_json()
        changed = [k for k in after if after[k] != before.get(k)]
        if changed:
            # The person's own change is stamped now; one taken from another
            # computer keeps the time it was made there (none if it had none).
            at = timestamp(self.session.now())
            stamps = {k: at for k in changed} if changed_at is None else changed_at
            times = json.loads(await self.session.meta(SETTINGS_CHANGED) or "{}")
            times.update({k: stamps[k] for k in changed if k in stamps})
            await self.session.set_meta(SETTINGS_CHANGED, json.dumps(times, sort_keys=True))
        # The time zone may have changed the current month.
        self.forget_open()
        await self.roll()
        return new

    # -- what the person reads -----------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        if self.session.locked:
            return {
                "locked": True,
                "month": None,
                "currency": CURRENCY,
                "budget_cents": None,
                "balance_cents": None,
                "clicks": None,
                "spend_cents": None,
                "per_click_cents": None,
            }
        self.watch.observe(self.session.now(), self.session.clock.elapsed())
        await self.roll()
        month = self.open_month or self.session.current_month()
        count, weight, given = await self.session.store.read(lambda db: sql.totals(db, month))
        out = self.status_of(month, count, weight, given)
        out["clock"] = self.clock_state()
        return out

    def clock_state(self) -> dict[str, Any]:
        """Whether months close on time: `ok`, `held` (with why; the person
        may confirm the date) or `behind` (the clock reads an earlier month
        than the open one)."""
        held = self.watch.hold()
        if held is not None:
            return {"state": "held", "message": held}
        late = behind(self.session.current_month(), self.open_month)
        if late is not None:
            return {"state": "behind", "message": late}
        return {"state": "ok", "message": None}

    async def confirm_clock(self) -> dict[str, Any]:
        """The person says the computer's date is right: held months close now."""
        self.session.require_wallet()
        self.watch.confirm(self.session.now(), self.session.clock.elapsed())
        self.forget_open()
        await self.roll()
        return self.clock_state()

    def hub_time(self, hub: dt.datetime) -> None:
        """The hub's time, from one of its answers: a hold may start or end."""
        was = self.watch.hold()
        self.watch.hub_time(self.session.now(), hub)
        if was is not None and self.watch.hold() is None:
            self._open_until = None  # the next request (or the timer) closes what is due

    def status_of(self, month: str, count: int, weight: int, given: int) -> dict[str, Any]:
        settings = self.session.settings
        balance = self.session.balance_cents
        wanted = budget.wanted_spend(settings.rules, weight)
        spend = budget.affordable(wanted, balance)
        out: dict[str, Any] = {
            "locked": False,
            "month": month,
            "state": policy.MonthState.OPEN,
            "currency": CURRENCY,
            "budget_cents": settings.budget_cents,
            "balance_cents": balance,
            "practice_hub": self.session.practice_hub,
            "clicks": count,
            "spend_cents": spend,
            "per_click_cents": budget.per_click_cents(spend, weight),
            "given_cents": given,
        }
        if spend < wanted:
            # Told before it happens: the month will spend only what is left.
            out["warning"] = "balance_short"
            out["short_cents"] = wanted - spend
        return out

    async def view(self, month: str) -> dict[str, Any]:
        wallet = await self.open_wallet()
        settings = wallet.settings
        balance = self.session.balance_cents
        joined = self.joined_keys()

        def view(db: Database) -> dict[str, Any]:
            out = month_of_row(db)
            # The month's direct transfers, outside its split.
            given = gifts_sql.of_month(db, month)
            out["transfers"] = [transfer_json(t) for t in given]
            out["given_cents"] = sum(t["cents"] for t in given if t["state"] != "refused")
            # Flattrs that reached this month after it was settled (another
            # computer's), moved to the open month: the person is told which.
            out["moved"] = sql.moved(db, month)
            return out

        def month_of_row(db: Database) -> dict[str, Any]:
            row = sql.row(db, month)
            if row is None:
                raise NotFound(f"no month {month} here")
            if policy.takes_flattrs(row["state"]):
                split = budget.split_budget(
                    settings.rules, flattrs_sql.click_weights(db, month), balance
                )
                allocations = [
                    {"creator": a.creator, "url": a.url, "cents": a.cents, "click": a.click_id}
                    for a in split.allocations
                ]
                return {
                    "month": month,
                    "state": policy.MonthState.OPEN,
                    "spend_cents": split.spend_cents,
                    "allocations": allocations,
                }
            # A month brought back by a restore whose record had to leave out
            # old documents (daemon/records/) has its receipt, not its split.
            doc = json.loads(row["document"]) if row["document"] else {"allocations": []}
            shares = doc["allocations"]
            if doc.get("unlinkable"):
                # The hub was sent none: the shares are the tokens', kept here.
                shares = tokens_sql.shares(db, month)
            return {
                "month": month,
                "state": row["state"],
                "spend_cents": row["spend_cents"],
                "allocations": [
                    {"creator": a["creator"], "url": a.get("url"), "cents": a["cents"]}
                    for a in shares
                ],
                "unlinkable": bool(doc.get("unlinkable")),
                "tokens": tokens_sql.summary(db, month, joined),
                "closed_at": row["closed_at"],
                "settlement": {"document": row["document"], "signature": row["signature"]},
                "receipt": json.loads(row["receipt"]) if row["receipt"] else None,
                "receipt_signature": row["receipt_signature"],
                "settled_at": row["settled_at"],
                "outcome": json.loads(row["outcome"]) if row["outcome"] else None,
                "outcome_at": row["outcome_at"],
                "sync": {
                    "attempts": row["sync_attempts"],
                    "error": row["sync_error"],
                    "next_attempt_at": row["next_sync_at"],
                },
            }

        return await self.session.store.read(view)

    async def listed(self) -> list[dict[str, Any]]:
        """Every month, newest first; an unlinkable one with where its tokens are."""
        await self.open_wallet()

        joined = self.joined_keys()

        def listed(db: Database) -> list[dict[str, Any]]:
            return [
                {
                    **dict(r),
                    "tokens": tokens_sql.summary(db, r["month"], joined),
                    "moved": sql.moved(db, r["month"]),
                }
                for r in sql.listed(db)
            ]

        return await self.session.store.read(listed)

    # -- what the hub link reads and records -------------------------------------------

    async def awaiting_outcome(self, before: str) -> list[str]:
        """Settled months whose money may still move (some withheld or in
        escrow, or no outcome known yet) and last asked about before `before`."""
        return await self.session.store.read(lambda db: sql.awaiting_outcome(db, before))

    async def unsent(self) -> list[dict[str, Any]]:
        """Closed months the hub has not acknowledged yet, oldest first."""
        return await self.session.store.read(sql.unsent)

    async def state_of(self, month: str) -> str | None:
        return await self.session.store.read(lambda db: sql.state(db, month))

    async def mark(self, month: str, **fields: Any) -> None:
        """Record how sending a closed month went (hub link); a change of
        state must be one of the month's moves (policy.MOVES)."""

        def mark(db: Database) -> None:
            if "state" in fields:
                now = sql.state(db, month)
                if now is None or policy.takes_flattrs(now):
                    return  # as before: an open or unknown month is not the link's
                policy.move(now, fields["state"])
            sql.mark(db, month, fields)

        await self.session.store.write(mark)
