"""Settlements accepted as appends, the ones waiting at one moment in one
commit (DESIGN.md, "The hub at scale").

Accepting a settlement writes only what is the giver's: the checked document
and its receipt, its allocations (`pending`), the giver's debit (to the
month's `Unrouted` money), the request's nonce and "gave this month".
Nothing of a creator is touched: the payout run (hub/payout.py) routes the
money afterwards, in batches, and counts the givers in the counters
(hub/counting.py).

Each hub process has one `Acceptor`: a group commit (hub/groupcommit.py).
Requests hand it their checked settlement and wait; the settlements waiting
at one moment are accepted together with one statement per kind of row (not
one per settlement) and one commit. A refusal of one settlement (a replayed
nonce, not enough money, its own key) refuses that one alone. A settlement
is acknowledged only after its commit.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mecene.settlement import Receipt, Settlement

from . import admit, bulk, ledger
from .errors import HubError
from .groupcommit import MAX_BATCH, GroupCommit, Outcome
from .ledger import LedgerAccount, Tokens, Unrouted, User
from .requests import SettlementRequest
from .schema import accounts, allocations, creator_keys, giving, nonces, settlements

UNROUTED_SHARDS = 32


@dataclass(frozen=True)
class Auth:
    """Who signed a request, and the nonce it spends: recorded with the
    request's own writes, in the same commit."""

    account: str
    nonce: str
    ts: int
    device: str | None = None  # the device that signed, if not the account's own key


@dataclass(frozen=True)
class Waiting:
    """A checked settlement and who signed it, waiting for its batch."""

    auth: Auth
    req: SettlementRequest


class Acceptor:
    """One process's group commit of settlements (hub/groupcommit.py)."""

    def __init__(
        self,
        engine: AsyncEngine,
        sign: Callable[[bytes], bytes],
        hub_key: str,
        now: Callable[[], int],
        *,
        on_accepted: Callable[[], None] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.sign = sign
        self.hub_key = hub_key
        self.now = now
        # One (account, month) once per batch: a second copy (the same
        # settlement sent twice at once) meets the first as already accepted.
        self._group: GroupCommit[Waiting] = GroupCommit(
            engine,
            lambda conn, batch: accept_batch(conn, self, batch),
            key=lambda w: (w.req.document.account, w.req.document.month),
            what="settlements",
            on_created=on_accepted,
            max_batch=max_batch,
        )

    async def accept(self, auth: Auth, req: SettlementRequest) -> tuple[bool, dict[str, Any]]:
        """(created, {receipt, signature}), once committed."""
        return await self._group.submit(Waiting(auth, req))


async def accept_batch(
    conn: AsyncConnection, acceptor: Acceptor, batch: Sequence[Waiting]
) -> list[Outcome]:
    """Accept `batch` in the transaction `conn`: one statement per kind of row."""
    now = acceptor.now()
    outcomes: list[Outcome | None] = [None] * len(batch)

    # The nonces, spent with the request's writes: one already spent is a replay.
    spent = await bulk.insert_many(
        conn,
        nonces,
        [{"account": a, "nonce": n, "ts": w_ts} for a, n, w_ts in _nonce_rows(batch)],
        ignore=True,
        returning=("account", "nonce"),
    )
    recorded = {(a, n) for a, n in spent}
    claimed: set[tuple[str, str]] = set()
    for i, w in enumerate(batch):
        key = (w.auth.account, w.auth.nonce)
        if key not in recorded or key in claimed:
            outcomes[i] = HubError(
                "replayed", "this request was already received (its nonce is spent)"
            )
        claimed.add(key)

    people = sorted({w.auth.account for w in batch})
    await bulk.insert_many(
        conn, accounts, [{"id": a, "created_at": now} for a in people], ignore=True
    )
    created = {
        a: int(c)
        for a, c in await conn.execute(
            select(accounts.c.id, accounts.c.created_at).where(
                bulk.one_of(conn, accounts.c.id, people)
            )
        )
    }
    pairs = {(w.req.document.account, w.req.document.month) for w in batch}
    known = {
        (r.account, r.month): r
        for r in await conn.execute(
            select(
                settlements.c.account,
                settlements.c.month,
                settlements.c.sha256,
                settlements.c.receipt,
                settlements.c.receipt_signature,
            ).where(
                bulk.one_of(conn, settlements.c.account, {a for a, _m in pairs}),
                bulk.one_of(conn, settlements.c.month, {m for _a, m in pairs}),
            )
        )
        if (r.account, r.month) in pairs
    }
    keys = sorted({a.creator for w in batch for a in w.req.document.allocations})
    own: dict[str, set[str]] = {}
    if keys:
        for key, owner in await conn.execute(
            select(creator_keys.c.key, creator_keys.c.owner).where(
                bulk.one_of(conn, creator_keys.c.owner, people),
                bulk.one_of(conn, creator_keys.c.key, keys),
            )
        ):
            own.setdefault(owner, set()).add(key)

    # The month's unrouted money goes to one of its shards, chosen per batch:
    # two processes' batches then seldom queue on one balance row.
    shard = f"{random.randrange(UNROUTED_SHARDS):02d}"
    months = sorted({w.req.document.month for w in batch})
    wanted: list[LedgerAccount] = [User(a) for a in people]
    wanted += [Unrouted(m, shard) for m in months]
    wanted += sorted(
        {Tokens(w.req.document.month) for w in batch if w.req.document.unlinkable}, key=str
    )
    balances = await ledger.lock(conn, wanted)

    accepted: list[tuple[int, Waiting, str, str]] = []
    for i, w in enumerate(batch):
        if outcomes[i] is not None:
            continue
        doc = w.req.document
        row = known.get((doc.account, doc.month))
        if row is not None:
            if row.sha256 != w.req.sha256:
                outcomes[i] = HubError(
                    "settlement_conflict",
                    f"{doc.month} is already settled with a different document",
                )
            else:
                outcomes[i] = (False, {"receipt": row.receipt, "signature": row.receipt_signature})
            continue
        have = balances[User(doc.account)]
        refused = admit.refusal(
            admit.Kind.SETTLEMENT,
            month=doc.month,
            spend_cents=doc.spend_cents,
            balance_cents=have,
            creators=(a.creator for a in doc.allocations),
            own_keys=own.get(doc.account, ()),
            account_created=created[doc.account],
        )
        if refused is not None:
            outcomes[i] = refused
            continue
        balances[User(doc.account)] = have - doc.spend_cents
        text, signature = Receipt(
            hub=acceptor.hub_key,
            account=doc.account,
            month=doc.month,
            sha256=w.req.sha256,
            spend_cents=doc.spend_cents,
            received_at=now,
        ).sign(acceptor.sign)
        accepted.append((i, w, text, signature))
        outcomes[i] = (True, {"receipt": text, "signature": signature})

    if accepted:
        await _write(conn, accepted, shard, now)
    return [o for o in outcomes if o is not None]


def _destination(doc: Settlement, shard: str) -> LedgerAccount:
    """Where a settlement's spend waits: for the payout run to route its
    allocations, or, for an unlinkable month, for its tokens' redemptions."""
    return Tokens(doc.month) if doc.unlinkable else Unrouted(doc.month, shard)


def _nonce_rows(batch: Sequence[Waiting]) -> list[tuple[str, str, int]]:
    rows: dict[tuple[str, str], int] = {}
    for w in batch:
        rows.setdefault((w.auth.account, w.auth.nonce), w.auth.ts)
    return [(a, n, ts) for (a, n), ts in rows.items()]


async def _write(
    conn: AsyncConnection,
    accepted: Sequence[tuple[int, Waiting, str, str]],
    shard: str,
    now: int,
) -> None:
    await bulk.insert_many(
        conn,
        settlements,
        [
            {
                "account": w.req.document.account,
                "month": w.req.document.month,
                "document": w.req.text,
                "signature": w.req.signature,
                "sha256": w.req.sha256,
                "spend_cents": w.req.document.spend_cents,
                "unlinkable": w.req.document.unlinkable,
                "receipt": text,
                "receipt_signature": signature,
                "received_at": now,
            }
            for _i, w, text, signature in accepted
        ],
    )
    rows = [
        {
            "account": w.req.document.account,
            "month": w.req.document.month,
            "creator": a.creator,
            "url": a.url,
            "cents": a.cents,
            "state": "pending",
            "recipient": None,
            "fee_cents": None,
            "settled_at": None,
            "withheld_month": None,
            "transfer_id": None,
        }
        for _i, w, _t, _s in accepted
        for a in w.req.document.allocations
    ]
    await bulk.insert_many(conn, allocations, rows)
    gave = [
        {"account": w.req.document.account, "month": w.req.document.month, "gave": True}
        for _i, w, _t, _s in accepted
        if admit.gives(w.req.document.spend_cents)
    ]
    if gave:
        stmt = ledger.upsert(conn, giving)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[giving.c.account, giving.c.month], set_={"gave": True}
            ),
            gave,
        )
    await ledger.post_many(
        conn,
        [
            (
                "settlement",
                f"{w.req.document.account}:{w.req.document.month}",
                {
                    User(w.req.document.account): -w.req.document.spend_cents,
                    _destination(w.req.document, shard): w.req.document.spend_cents,
                },
            )
            for _i, w, _t, _s in accepted
        ],
        now,
    )
