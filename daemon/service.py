"""The daemon's logic: flattrs, months, subscriptions, pairing, the wallet.

This module knows nothing of HTTP. Handlers in `daemon/server.py` parse a
request with `daemon/validate.py`, call one method here and turn a
`DomainError` into a status code.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from mecene import money, tokens
from mecene.amounts import euros
from mecene.money import CURRENCY
from mecene.time import (
    Clock,
    add_months,
    month_of,
    month_start,
    months_between,
    timestamp,
    zone,
)

from . import budget, unlinkable
from .dashboard import Sessions
from .errors import (
    ClockBehind,
    DomainError,
    FlattrOnce,
    FlattrOwner,
    IdConflict,
    InsufficientFunds,
    Invalid,
    Locked,
    MonthClosed,
    NotFound,
    WrongPassphrase,
)
from .pairing import Pairing, Pairings, hash_token, new_token
from .settlement import settlement_document
from .store import Store
from .validate import ClickRequest, SubscriptionRequest, TransferRequest
from .wallet import Settings, Wallet, WalletError
from .wallet import WrongPassphrase as WalletWrongPassphrase

log = logging.getLogger("mecene")
SUBSCRIPTION_NS = uuid.UUID("6d656365-6e65-4d65-8e65-737562736372")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a paired browser, or the person (dashboard and CLI)."""

    kind: str  # "browser" | "admin"
    token_id: str | None = None
    name: str | None = None


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


def transfer_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "month": row["month"],
        "creator": row["creator"],
        "url": row["url"],
        "title": row["title"],
        "note": row["note"],
        "cents": row["cents"],
        "state": row["state"],
        "error": row["error"],
        "message": row["message"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"],
        "receipt": json.loads(row["receipt"]) if row["receipt"] else None,
        "receipt_signature": row["receipt_signature"],
        "created_at": row["created_at"],
        "given_at": row["given_at"],
        "unlinkable": bool(row["unlinkable"]),
    }


def _click_weights(db: Database, month: str) -> list[budget.ClickWeight]:
    rows = db.execute(
        "SELECT id, created_at, creator, url, weight FROM clicks "
        "WHERE month = ? AND undone_at IS NULL",
        [month],
    ).fetchall()
    return [budget.ClickWeight(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def _closed_month_error(db: Database, month: str, now: dt.datetime, tz: str) -> DomainError:
    """Why a click for `month` found it closed. Either it closed a moment ago
    (the click raced the month's end: send it again), or the clock says
    `month` while the month was closed already, from a later clock: the clock
    has moved back, and every flattr would fail until it is set right."""
    row = db.execute("SELECT closed_at FROM months WHERE month = ?", [month]).fetchone()
    if row is not None and month_of(now, tz) == month:
        local = now.astimezone(zone(tz)).strftime("%d %B %Y, %H:%M")
        closed = str(row[0] or "")[:16].replace("T", " ")
        return ClockBehind(
            f"this computer's clock reads {local} ({tz}), but {month} was already closed "
            f"(at {closed} UTC): the clock has moved back. Set the clock right (automatic "
            "date and time), then flattr again; nothing was recorded."
        )
    return MonthClosed("the month has just closed; send the click again")


def _totals(db: Database, month: str) -> tuple[int, int, int]:
    """The month's live click count, total weight and what its direct
    transfers give (kept by triggers, see store.py)."""
    row = db.execute(
        "SELECT live_clicks, live_weight, given_cents FROM months WHERE month = ?", [month]
    ).fetchone()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def _month_state(db: Database, month: str) -> str | None:
    row = db.execute("SELECT state FROM months WHERE month = ?", [month]).fetchone()
    return None if row is None else str(row[0])


def _place_subscription_clicks(db: Database, month: str, at: str) -> int:
    """Place the automatic click of every subscription due in `month`.

    Idempotent: a click already placed (even undone) for a subscription and a
    month, or a thing already flattred by hand that month, is left as it is.
    """
    subs = db.execute(
        "SELECT id, url, creator, title FROM subscriptions "
        "WHERE first_month <= ? AND last_month >= ? "
        "AND (cancelled_month IS NULL OR cancelled_month > ?)",
        [month, month, month],
    ).fetchall()
    placed = 0
    for sub_id, url, creator, title in subs:
        click_id = str(uuid.uuid5(SUBSCRIPTION_NS, f"{sub_id}/{month}"))
        cur = db.execute(
            "INSERT OR IGNORE INTO clicks (id, month, url, title, creator, creators, weight, "
            "auto, subscription_id, created_at) VALUES (?, ?, ?, ?, ?, '[]', 1, 1, ?, ?)",
            [click_id, month, url, title, creator, sub_id, at],
        )
        placed += cur.rowcount
    return placed


def _refused_click(db: Database, req: ClickRequest, month: str) -> tuple[Any, bool, int, int, int]:
    """Why the insert of `req` broke a unique index: the same id again (return
    that click, unchanged) or the same thing this month (409)."""
    existing = db.execute("SELECT * FROM clicks WHERE id = ?", [req.id]).fetchone()
    if existing is not None:
        if existing["url"] != req.url or existing["creator"] != req.creator:
            raise IdConflict("that click id was already used for another flattr")
        return (existing, False, *_totals(db, existing["month"]))
    same = db.execute(
        "SELECT * FROM clicks WHERE month = ? AND url = ? AND undone_at IS NULL", [month, req.url]
    ).fetchone()
    if same is None:  # no other unique index can refuse a new click
        raise RuntimeError(f"click {req.id} refused by an unexpected constraint")
    raise FlattrOnce("you already flattred this page this month", click=click_json(same))


@dataclass(frozen=True)
class Joined:
    """The creators who have joined the hub, as of `at`."""

    keys: frozenset[str]
    escrow_months: int
    at: dt.datetime
    nonprofit: frozenset[str] = frozenset()  # keys whose owner pays no fee


def _not_own(wallet: Wallet, creator: str) -> None:
    """A flattr, subscription or gift to one of the person's own keys is refused."""
    if creator in wallet.settings.own_creators:
        raise FlattrOwner("that is one of your own creator keys")


def _in_bounds(cents: int) -> None:
    try:
        money.transfer_cents(cents)
    except money.OutOfBounds as exc:
        raise Invalid(str(exc)) from None


class Service:
    def __init__(self, store: Store, clock: Clock, wallet_path: Path, wallet: Wallet | None = None):
        self.store = store
        self.clock = clock
        self.wallet_path = wallet_path
        self.wallet = wallet
        self.pairings = Pairings()
        self.sessions = Sessions()
        self.admin_token_hash: str | None = None
        self._tokens: dict[str, Principal] = {}
        self._authenticated: dict[str, Principal] = {}  # valid tokens seen, by token
        self._open_month: str | None = None
        self._open_until: dt.datetime | None = None  # when the open month ends
        self._roll_lock = asyncio.Lock()
        self._balance_cents: int | None = None
        # Called when months close or the wallet is unlocked (the hub link sends them).
        self.on_months_closed: Callable[[], None] | None = None
        # The hub's published set of proved creator keys, downloaded whole by
        # the hub link (never a question about one key); None until it arrives.
        self.joined: Joined | None = None

    # -- start-up, wallet ------------------------------------------------

    async def start(self) -> None:
        """Load the paired browsers and close any month that ended while we were away."""
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT id, name, token_hash FROM tokens WHERE revoked_at IS NULL"
            ).fetchall()
        )
        self._tokens = {r[2]: Principal("browser", r[0], r[1]) for r in rows}
        balance = await self.store.read(
            lambda db: db.execute("SELECT value FROM meta WHERE key = 'balance_cents'").fetchone()
        )
        self._balance_cents = None if balance is None else int(balance[0])
        if self.wallet is not None:
            await self.roll_months()

    async def open_wallet(self) -> Wallet:
        """The unlocked wallet (else `Locked`), with the current month open and
        every past month closed: where each request about the month starts."""
        wallet = self.require_wallet()
        await self.roll_months()
        return wallet

    def require_wallet(self) -> Wallet:
        if self.wallet is None:
            raise Locked("the wallet is locked: unlock it with `mecene unlock` or the dashboard")
        return self.wallet

    @property
    def locked(self) -> bool:
        return self.wallet is None

    async def unlock(self, passphrase: str) -> None:
        if self.wallet is not None:
            return
        try:
            self.wallet = await asyncio.to_thread(Wallet.open, self.wallet_path, passphrase)
        except WalletWrongPassphrase:
            raise WrongPassphrase("wrong passphrase") from None
        except WalletError as exc:
            raise Invalid(str(exc)) from None
        log.info("wallet unlocked")
        await self.roll_months()
        if self.on_months_closed is not None:
            self.on_months_closed()

    def lock(self) -> None:
        self.wallet = None
        self._open_month = None
        self._open_until = None
        log.info("wallet locked")

    @property
    def balance_cents(self) -> int | None:
        """The balance the hub last reported; None until a hub has told us.

        Read from the database at start and kept in memory: this daemon is its
        only writer, and every status answer needs it.
        """
        return self._balance_cents

    async def meta(self, key: str) -> str | None:
        row = await self.store.read(
            lambda db: db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        )
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self.store.write(
            lambda db: db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
        )

    async def set_balance(self, cents: int) -> None:
        """The balance the hub reports (hub link); kept for the status and the split."""
        await self.set_meta("balance_cents", str(cents))
        self._balance_cents = cents

    # -- months -----------------------------------------------------------

    def current_month(self) -> str:
        wallet = self.require_wallet()
        return month_of(self.clock.now(), wallet.settings.time_zone)

    async def roll_months(self) -> list[str]:
        """Open the current month; first close, in order, every past month still open.

        Cheap when nothing changed (one comparison), so every request may call it.
        Returns the months it closed.
        """
        if self._open_until is not None and self.clock.now() < self._open_until:
            return []
        current = self.current_month()
        if current == self._open_month:
            return []
        async with self._roll_lock:
            current = self.current_month()
            if current == self._open_month:
                return []
            to_close = await self.store.write(lambda db: self._open_months_until(db, current))
            for month in to_close:
                await self.close_month(month)
            if to_close and self.on_months_closed is not None:
                self.on_months_closed()
            at = timestamp(self.clock.now())
            if not self.require_wallet().settings.subscriptions_paused:
                await self.store.write(lambda db: _place_subscription_clicks(db, current, at))
            self._open_month = current
            tz = self.require_wallet().settings.time_zone
            self._open_until = month_start(add_months(current, 1), tz)
            return to_close

    @staticmethod
    def _open_months_until(db: Database, current: str) -> list[str]:
        """Make sure every month from the last one seen to `current` has a row;
        return the past months still open, oldest first."""
        latest = db.execute("SELECT max(month) FROM months").fetchone()[0]
        first_new = current if latest is None else add_months(latest, 1)
        for month in months_between(first_new, current):
            db.execute("INSERT OR IGNORE INTO months (month, state) VALUES (?, 'open')", [month])
        db.execute("INSERT OR IGNORE INTO months (month, state) VALUES (?, 'open')", [current])
        rows = db.execute(
            "SELECT month FROM months WHERE state = 'open' AND month < ? ORDER BY month", [current]
        ).fetchall()
        return [r[0] for r in rows]

    async def close_month(self, month: str, *, again: bool = False) -> dict[str, Any] | None:
        """Close one past month: place its due subscription clicks, split, freeze, sign.

        All in one transaction: a crash leaves the month open or closed, never
        half-closed. Returns the signed document, or None if it was not open.
        Clicks on the person's own keys are left out (the hub refuses to pay
        them). `again`: sign a new split of a month the hub refused and never
        accepted (it learned of an own key since), as if it were still open.
        """
        wallet = self.require_wallet()
        settings = wallet.settings
        balance = self.balance_cents
        at = timestamp(self.clock.now())
        own = set(settings.own_creators)

        def close(db: Database) -> dict[str, Any] | None:
            state = _month_state(db, month)
            if state != "open" and not (again and state in ("closed", "submitted")):
                return None
            if not settings.subscriptions_paused:
                _place_subscription_clicks(db, month, at)
            clicks = [c for c in _click_weights(db, month) if c.creator not in own]
            split = budget.split_budget(settings.rules, clicks, balance)
            doc = settlement_document(
                wallet.account,
                month,
                split.spend_cents,
                split.allocations,
                settings.private,
                unlinkable=settings.unlinkable,
            )
            text, signature = doc.sign(wallet.sign)
            # The tokens the spend will go as, planned with the month, in the
            # same transaction (none if it is not unlinkable).
            unlinkable.plan(
                db, month, budget.by_creator(split.allocations) if doc.unlinkable else []
            )
            db.execute(
                "UPDATE months SET state = 'closed', spend_cents = ?, document = ?, "
                "signature = ?, closed_at = ?, sync_error = NULL, next_sync_at = NULL "
                "WHERE month = ?",
                [split.spend_cents, text, signature, at, month],
            )
            return doc.as_json()

        doc = await self.store.write(close)
        if doc is not None:
            log.info(
                "month %s closed: %s split between %d creators' things%s",
                month,
                euros(doc["spend_cents"]),
                len(doc["allocations"]),
                " (unlinkable: as tokens)" if doc.get("unlinkable") else "",
            )
        return doc

    async def status(self) -> dict[str, Any]:
        if self.wallet is None:
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
        await self.roll_months()
        month = self.current_month()
        count, weight, given = await self.store.read(lambda db: _totals(db, month))
        return await self._status(month, count, weight, given)

    async def _status(self, month: str, count: int, weight: int, given: int) -> dict[str, Any]:
        settings = self.require_wallet().settings
        balance = self.balance_cents
        wanted = budget.wanted_spend(settings.rules, weight)
        spend = budget.affordable(wanted, balance)
        out: dict[str, Any] = {
            "locked": False,
            "month": month,
            "state": "open",
            "currency": CURRENCY,
            "budget_cents": settings.budget_cents,
            "balance_cents": balance,
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

    async def month_view(self, month: str) -> dict[str, Any]:
        wallet = await self.open_wallet()
        settings = wallet.settings
        balance = self.balance_cents

        def view(db: Database) -> dict[str, Any]:
            out = month_of_row(db)
            # The month's direct transfers, outside its split.
            given = db.execute(
                "SELECT * FROM transfers WHERE month = ? ORDER BY created_at, id", [month]
            ).fetchall()
            out["transfers"] = [transfer_json(t) for t in given]
            out["given_cents"] = sum(t["cents"] for t in given if t["state"] != "refused")
            return out

        def month_of_row(db: Database) -> dict[str, Any]:
            row = db.execute("SELECT * FROM months WHERE month = ?", [month]).fetchone()
            if row is None:
                raise NotFound(f"no month {month} here")
            if row["state"] == "open":
                split = budget.split_budget(settings.rules, _click_weights(db, month), balance)
                allocations = [
                    {"creator": a.creator, "url": a.url, "cents": a.cents, "click": a.click_id}
                    for a in split.allocations
                ]
                return {
                    "month": month,
                    "state": "open",
                    "spend_cents": split.spend_cents,
                    "allocations": allocations,
                }
            doc = json.loads(row["document"])
            shares = doc["allocations"]
            if doc.get("unlinkable"):
                # The hub was sent none: the shares are the tokens', kept here.
                shares = unlinkable.shares(db, month)
            return {
                "month": month,
                "state": row["state"],
                "spend_cents": row["spend_cents"],
                "allocations": [
                    {"creator": a["creator"], "url": a.get("url"), "cents": a["cents"]}
                    for a in shares
                ],
                "unlinkable": bool(doc.get("unlinkable")),
                "tokens": unlinkable.summary(db, month),
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

        return await self.store.read(view)

    async def months_awaiting_outcome(self, before: str) -> list[str]:
        """Settled months whose money may still move (some withheld or in
        escrow, or no outcome known yet) and last asked about before `before`."""

        def find(db: Database) -> list[str]:
            rows = db.execute(
                "SELECT month, outcome FROM months WHERE state = 'settled' "
                "AND (outcome_at IS NULL OR outcome_at < ?) ORDER BY month",
                [before],
            ).fetchall()
            out = []
            for month, outcome in rows:
                known = json.loads(outcome) if outcome else None
                if known is None or any(
                    known.get(f"{state}_cents") for state in ("pending", "withheld", "escrow")
                ):
                    out.append(str(month))
            return out

        return await self.store.read(find)

    async def unsent_months(self) -> list[dict[str, Any]]:
        """Closed months the hub has not acknowledged yet, oldest first."""
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT month, state, document, signature, sync_attempts, sync_error, "
                "next_sync_at FROM months WHERE state IN ('closed', 'submitted') ORDER BY month"
            ).fetchall()
        )
        return [dict(r) for r in rows]

    _MONTH_SYNC_FIELDS = frozenset(
        {
            "state",
            "sync_attempts",
            "sync_error",
            "next_sync_at",
            "receipt",
            "receipt_signature",
            "settled_at",
            "outcome",
            "outcome_at",
        }
    )

    async def mark_month(self, month: str, **fields: Any) -> None:
        """Record how sending a closed month went (hub link)."""
        if not fields or not set(fields) <= self._MONTH_SYNC_FIELDS:
            raise ValueError(f"not month sync fields: {sorted(fields)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        await self.store.write(
            lambda db: db.execute(
                f"UPDATE months SET {sets} WHERE month = ? AND state != 'open'",  # noqa: S608
                [*fields.values(), month],
            )
        )

    async def months(self) -> list[dict[str, Any]]:
        """Every month, newest first; an unlinkable one with where its tokens are."""
        await self.open_wallet()

        def listed(db: Database) -> list[dict[str, Any]]:
            rows = db.execute(
                "SELECT month, state, spend_cents, given_cents, closed_at, settled_at, "
                "sync_error FROM months ORDER BY month DESC"
            ).fetchall()
            return [{**dict(r), "tokens": unlinkable.summary(db, r["month"])} for r in rows]

        return await self.store.read(listed)

    # -- clicks -------------------------------------------------------------

    async def record_click(self, req: ClickRequest) -> tuple[dict[str, Any], bool, dict[str, Any]]:
        """Record a flattr. Returns (click, created, status); the same client id
        again returns the same click with created=False."""
        wallet = await self.open_wallet()
        _not_own(wallet, req.creator)
        now = self.clock.now()
        month = self._open_month or self.current_month()
        at = timestamp(now)
        creators = json.dumps(list(req.creators), separators=(",", ":")) if req.creators else "[]"

        def record(db: Database) -> tuple[Any, bool, int, int, int]:
            # One writing statement on the common path: the unique indexes
            # answer "was this id seen?" and "was this thing flattred this
            # month?", and the lookup runs only when the insert is refused.
            try:
                inserted = db.execute(
                    "INSERT INTO clicks (id, month, url, title, creator, creators, weight, auto, "
                    "created_at) SELECT ?, ?, ?, ?, ?, ?, ?, 0, ? "
                    "WHERE EXISTS (SELECT 1 FROM months WHERE month = ? AND state = 'open')",
                    [
                        req.id,
                        month,
                        req.url,
                        req.title,
                        req.creator,
                        creators,
                        req.weight,
                        at,
                        month,
                    ],
                ).rowcount
            except sqlite3.IntegrityError:
                return _refused_click(db, req, month)
            if inserted != 1:
                raise _closed_month_error(db, month, now, wallet.settings.time_zone)
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
            return (row, True, *_totals(db, month))

        row, created, count, weight, given = await self.store.write(record, savepoint=False)
        status = await self._status(month, count, weight, given)
        return click_json(row), created, status

    async def undo_click(self, click_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        await self.open_wallet()
        at = timestamp(self.clock.now())

        def undo(db: Database) -> tuple[Any, int, int, int]:
            row = db.execute("SELECT * FROM clicks WHERE id = ?", [click_id]).fetchone()
            if row is None:
                raise NotFound("no such click")
            if _month_state(db, row["month"]) != "open":
                raise MonthClosed(f"{row['month']} is closed: its flattrs can no longer be undone")
            if row["undone_at"] is None:
                db.execute("UPDATE clicks SET undone_at = ? WHERE id = ?", [at, click_id])
                row = db.execute("SELECT * FROM clicks WHERE id = ?", [click_id]).fetchone()
            return (row, *_totals(db, row["month"]))

        row, count, weight, given = await self.store.write(undo)
        return click_json(row), await self._status(row["month"], count, weight, given)

    async def clicks(self, month: str | None) -> dict[str, Any]:
        await self.open_wallet()
        month = month or self.current_month()
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT * FROM clicks WHERE month = ? AND undone_at IS NULL "
                "ORDER BY created_at, id",
                [month],
            ).fetchall()
        )
        return {"month": month, "clicks": [click_json(r) for r in rows]}

    # -- subscriptions -------------------------------------------------------

    async def subscribe(self, req: SubscriptionRequest) -> tuple[dict[str, Any], bool]:
        wallet = await self.open_wallet()
        _not_own(wallet, req.creator)
        month = self.current_month()
        at = timestamp(self.clock.now())
        sub_id = req.id or str(uuid.uuid4())
        paused = wallet.settings.subscriptions_paused

        def subscribe(db: Database) -> tuple[Any, bool]:
            existing = db.execute("SELECT * FROM subscriptions WHERE id = ?", [sub_id]).fetchone()
            if existing is not None:
                if existing["creator"] != req.creator or existing["url"] != req.url:
                    raise IdConflict("that subscription id was already used")
                return existing, False
            db.execute(
                "INSERT INTO subscriptions (id, url, creator, title, months, first_month, "
                "last_month, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    sub_id,
                    req.url,
                    req.creator,
                    req.title,
                    req.months,
                    month,
                    add_months(month, req.months - 1),
                    at,
                ],
            )
            if not paused:
                _place_subscription_clicks(db, month, at)
            row = db.execute("SELECT * FROM subscriptions WHERE id = ?", [sub_id]).fetchone()
            return row, True

        row, created = await self.store.write(subscribe)
        return self._subscription_json(row, month), created

    def _subscription_json(self, row: Any, month: str) -> dict[str, Any]:
        if row["cancelled_month"] is not None:
            state = "cancelled"
        elif row["last_month"] < month:
            state = "finished"
        else:
            state = "active"
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
            "state": state,
        }

    async def subscriptions(self) -> list[dict[str, Any]]:
        self.require_wallet()
        month = self.current_month()
        rows = await self.store.read(
            lambda db: db.execute("SELECT * FROM subscriptions ORDER BY created_at, id").fetchall()
        )
        return [self._subscription_json(r, month) for r in rows]

    async def cancel_subscription(self, sub_id: str) -> dict[str, Any]:
        """Stop future automatic clicks; this month's click stays (undo it separately)."""
        await self.open_wallet()
        month = self.current_month()

        def cancel(db: Database) -> Any:
            row = db.execute("SELECT * FROM subscriptions WHERE id = ?", [sub_id]).fetchone()
            if row is None:
                raise NotFound("no such subscription")
            if row["cancelled_month"] is None:
                # Cancelled from next month on: this month's click is already placed.
                db.execute(
                    "UPDATE subscriptions SET cancelled_month = ? WHERE id = ?",
                    [add_months(month, 1), sub_id],
                )
            return db.execute("SELECT * FROM subscriptions WHERE id = ?", [sub_id]).fetchone()

        return self._subscription_json(await self.store.write(cancel), month)

    # -- direct transfers ---------------------------------------------------------

    async def record_transfer(self, req: TransferRequest) -> tuple[dict[str, Any], bool]:
        """Record a direct transfer durably, before it is sent (the hub link
        sends it): (transfer, created). The same id again returns it as it is;
        with another body, `id_conflict`. Refused before anything is recorded:
        a locked wallet, an amount out of bounds, one's own key, more than the
        balance."""
        wallet = await self.open_wallet()
        _not_own(wallet, req.creator)
        _in_bounds(req.cents)
        month = self._open_month or self.current_month()
        at = timestamp(self.clock.now())
        unlinked = wallet.settings.unlinkable
        # Private: the creator only. Unlinkable: the hub hears of no creator at all.
        url = None if wallet.settings.private or unlinked else req.url
        balance = self.balance_cents

        def record(db: Database) -> tuple[Any, bool]:
            known = db.execute("SELECT * FROM transfers WHERE id = ?", [req.id]).fetchone()
            if known is not None:
                if (known["creator"], known["cents"], known["url"]) != (
                    req.creator,
                    req.cents,
                    url,
                ):
                    raise IdConflict("that transfer id was already used for another transfer")
                return known, False
            if balance is not None:
                # The balance the hub last gave, less what is still on its way there.
                sending = db.execute(
                    "SELECT coalesce(sum(cents), 0) FROM transfers WHERE state = 'sending'"
                ).fetchone()[0]
                if balance - sending < req.cents:
                    left = balance - sending
                    raise InsufficientFunds(
                        f"the balance is {euros(left)}, less than the {euros(req.cents)} to give: "
                        "deposit first",
                        balance_cents=left,
                    )
            db.execute(
                "INSERT INTO transfers (id, month, creator, url, title, note, cents, state, "
                "attempts, created_at, unlinkable) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'sending', 0, ?, ?)",
                [req.id, month, req.creator, url, req.title, req.note, req.cents, at, unlinked],
            )
            return db.execute("SELECT * FROM transfers WHERE id = ?", [req.id]).fetchone(), True

        row, created = await self.store.write(record)
        if created:
            log.info("transfer %s: %s to %s recorded", req.id, euros(req.cents), req.creator)
        return transfer_json(row), created

    def transfer_quote(self, creator: str, cents: int) -> dict[str, Any]:
        """What `creator` would receive of `cents`, before the person confirms:
        the hub's fee (10 %, none for a non-profit: the hub's published list
        says which), whether they have joined (else it waits in escrow), and
        what the balance would be after. Computed here: asking the hub would
        tell it whom the person thinks of giving to."""
        wallet = self.require_wallet()
        _not_own(wallet, creator)
        _in_bounds(cents)
        j = self.joined
        nonprofit = j is not None and creator in j.nonprofit
        unlinked = wallet.settings.unlinkable
        if unlinked:
            # As tokens: the hub takes its fee on each token, rounded on each.
            fee = sum(money.creator_fee_cents(d, nonprofit=nonprofit) for d in tokens.split(cents))
        else:
            fee = money.creator_fee_cents(cents, nonprofit=nonprofit)
        balance = self.balance_cents
        out: dict[str, Any] = {
            "creator": creator,
            "cents": cents,
            "fee_cents": fee,
            "net_cents": cents - fee,
            "nonprofit": nonprofit,
            # As tokens, money held for a creator who has not joined waits
            # for them: the hub cannot know whom to give it back to.
            "unlinkable": unlinked,
            "joined": None if j is None else creator in j.keys,
            "escrow_months": None if j is None else j.escrow_months,
            "balance_cents": balance,
            "balance_after_cents": None if balance is None else balance - cents,
        }
        if balance is not None and balance < cents:
            out["short_cents"] = cents - balance
        return out

    async def transfers(self, month: str | None = None) -> list[dict[str, Any]]:
        self.require_wallet()

        def rows(db: Database) -> list[Any]:
            if month is None:
                return db.execute("SELECT * FROM transfers ORDER BY created_at, id").fetchall()
            return db.execute(
                "SELECT * FROM transfers WHERE month = ? ORDER BY created_at, id", [month]
            ).fetchall()

        return [transfer_json(r) for r in await self.store.read(rows)]

    async def transfer(self, transfer_id: str) -> dict[str, Any]:
        row = await self.store.read(
            lambda db: db.execute("SELECT * FROM transfers WHERE id = ?", [transfer_id]).fetchone()
        )
        if row is None:
            raise NotFound("no such transfer")
        return transfer_json(row)

    async def sending_transfers(self) -> list[dict[str, Any]]:
        """Transfers recorded and not yet answered by the hub, oldest first."""
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT * FROM transfers WHERE state = 'sending' ORDER BY created_at, id"
            ).fetchall()
        )
        return [transfer_json(r) for r in rows]

    _TRANSFER_FIELDS = frozenset(
        {
            "state",
            "error",
            "message",
            "attempts",
            "next_attempt_at",
            "receipt",
            "receipt_signature",
            "given_at",
        }
    )

    async def mark_transfer(self, transfer_id: str, **fields: Any) -> dict[str, Any]:
        """Record how sending a transfer went (hub link); a transfer given or
        refused is final."""
        if not fields or not set(fields) <= self._TRANSFER_FIELDS:
            raise ValueError(f"not transfer fields: {sorted(fields)}")
        sets = ", ".join(f"{name} = ?" for name in fields)

        def mark(db: Database) -> Any:
            db.execute(
                f"UPDATE transfers SET {sets} WHERE id = ? AND state = 'sending'",  # noqa: S608
                [*fields.values(), transfer_id],
            )
            return db.execute("SELECT * FROM transfers WHERE id = ?", [transfer_id]).fetchone()

        return transfer_json(await self.store.write(mark))

    # -- settings -------------------------------------------------------------

    def settings(self) -> Settings:
        return self.require_wallet().settings

    async def add_own_creator(self, key: str) -> None:
        """A key the person owns (a flattr id the hub issued them): never flattred
        by themselves (`flattr_owner`)."""
        own = self.settings().own_creators
        if key not in own:
            await self.update_settings({"own_creators": (*own, key)})

    async def update_settings(self, changes: dict[str, Any]) -> Settings:
        wallet = self.require_wallet()
        try:
            new = await asyncio.to_thread(wallet.update_settings, **changes)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        # The time zone may have changed the current month.
        self._open_month = None
        self._open_until = None
        await self.roll_months()
        return new

    # -- who has joined -------------------------------------------------------------

    def creators_joined(self, keys: list[str]) -> dict[str, Any]:
        """Whether each key has joined, from the last list the hub published
        (`joined` is None while no list has arrived yet)."""
        j = self.joined
        return {
            "creators": [{"key": k, "joined": None if j is None else k in j.keys} for k in keys],
            "escrow_months": None if j is None else j.escrow_months,
            "list_at": None if j is None else timestamp(j.at),
            # As tokens, money held for a creator waits for them for good.
            "unlinkable": self.wallet is not None and self.wallet.settings.unlinkable,
        }

    # -- pairing and tokens ------------------------------------------------------

    def dashboard_session(self, token: str, secret: str) -> Principal | None:
        """The person, when the cookie's `token` and the header's `secret` are
        one live dashboard session (the cookie alone is not: see dashboard.py)."""
        if self.sessions.valid(token, secret, self.clock.now()):
            return Principal("admin", None, "dashboard")
        return None

    def authenticate(self, token: str) -> Principal | None:
        """Who holds `token`, or None. Valid tokens are remembered so that a
        browser's clicks do not hash the same token again; revoking forgets."""
        known = self._authenticated.get(token)
        if known is not None:
            return known
        digest = hash_token(token)
        principal: Principal | None
        if self.admin_token_hash is not None and secrets.compare_digest(
            digest, self.admin_token_hash
        ):
            principal = Principal("admin", None, "admin")
        else:
            principal = self._tokens.get(digest)
        if principal is not None:
            self._authenticated[token] = principal
        return principal

    def request_pairing(self, client: str) -> Pairing:
        pairing = self.pairings.request(client, self.clock.now())
        log.info(
            "pairing request from %r: code %s (approve it with `mecene pair approve %s`)",
            client,
            pairing.code,
            pairing.code,
        )
        return pairing

    def poll_pairing(self, pairing_id: str) -> dict[str, Any]:
        return self.pairings.poll(pairing_id, self.clock.now())

    def pending_pairings(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [
            {
                "code": p.code,
                "client": p.client,
                "created_at": timestamp(p.created),
                "expires_in": p.expires_in(now),
            }
            for p in self.pairings.pending(now)
        ]

    async def approve_pairing(self, code: object) -> dict[str, str]:
        pairing = self.pairings.find_pending(code, self.clock.now())
        token = new_token()
        token_id = str(uuid.uuid4())
        digest = hash_token(token)
        at = timestamp(self.clock.now())
        await self.store.write(
            lambda db: db.execute(
                "INSERT INTO tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
                [token_id, pairing.client, digest, at],
            )
        )
        self._tokens[digest] = Principal("browser", token_id, pairing.client)
        self.pairings.approve(pairing, token)
        log.info("pairing approved for %r", pairing.client)
        return {"id": token_id, "name": pairing.client}

    def deny_pairing(self, code: object) -> None:
        self.pairings.deny(self.pairings.find_pending(code, self.clock.now()))

    async def browsers(self) -> list[dict[str, Any]]:
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT id, name, created_at, revoked_at FROM tokens ORDER BY created_at"
            ).fetchall()
        )
        return [dict(r) for r in rows]

    async def revoke_browser(self, token_id: str) -> dict[str, Any]:
        at = timestamp(self.clock.now())

        def revoke(db: Database) -> Any:
            row = db.execute("SELECT * FROM tokens WHERE id = ?", [token_id]).fetchone()
            if row is None:
                raise NotFound("no such paired browser")
            if row["revoked_at"] is None:
                db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", [at, token_id])
            return db.execute(
                "SELECT id, name, created_at, revoked_at, token_hash FROM tokens WHERE id = ?",
                [token_id],
            ).fetchone()

        row = await self.store.write(revoke)
        self._tokens.pop(row["token_hash"], None)
        self._authenticated.clear()
        log.info("browser %r revoked", row["name"])
        return {k: row[k] for k in ("id", "name", "created_at", "revoked_at")}
