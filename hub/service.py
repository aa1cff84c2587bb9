"""The hub's logic, without HTTP: accounts, deposits, settlements, creators,
escrow, withdrawals and counters. Every money movement is one ledger entry in
the same database transaction as the rows that explain it.

A settlement is accepted as an append, many in one commit (hub/accept.py);
the payout run routes its money afterwards, in batches (hub/payout.py). A
direct transfer, a claim's verification and the escrow's return move their
money at once.

Locks (PostgreSQL; SQLite runs one writer at a time): a transfer, a payout
chunk, a claim's verification and the escrow expiry lock `creator_keys` rows
first, in key order, then `giving` rows, in account order, then ledger rows
in name order, so no two of them can deadlock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mecene import money, signing
from mecene.amounts import euros
from mecene.encoding import b64u
from mecene.settlement import Settlement, TransferReceipt
from mecene.time import Clock, add_months, month_ended_everywhere, timestamp

from . import ledger, payout, routing
from .accept import Acceptor, Auth
from .db import transaction
from .errors import HubError
from .ledger import (
    Creator,
    Escrow,
    Fees,
    LedgerAccount,
    Payouts,
    Provider,
    ProviderFees,
    Unrouted,
    User,
    Withheld,
)
from .payout import PayoutReport
from .proofs import ProofError, ProofFetcher, where_to_prove
from .provider import PaymentProvider
from .requests import DepositRequest, Quote, SettlementRequest, TransferRequest, WithdrawalRequest
from .routing import NO_GIVER, Piece, Routed
from .schema import (
    accounts,
    allocations,
    claims,
    counter_people,
    creator_keys,
    deposits,
    giving,
    nonces,
    settlements,
    spent_tokens,
    transfers,
    withdrawals,
)
from .tokens import TokenDesk

T = TypeVar("T")


OUTCOME_STATES = ("pending", "credited", "withheld", "escrow", "returned")


@dataclass(frozen=True)
class HubConfig:
    escrow_months: int = 12
    must_give: bool = True  # "to receive, you must give" (DESIGN.md)
    name: str = "Mécène hub"


def utc_month(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m")


def _lost_a_race(exc: DBAPIError) -> bool:
    """Whether a concurrent transaction, not this one's own content, made it
    fail: a row it meant to insert was inserted meanwhile (unique), or
    PostgreSQL chose it as a deadlock or serialization victim. Worth one more
    try; anything else (a foreign key, a CHECK) is a bug to surface."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    if state in ("23505", "40001", "40P01"):
        return True
    return isinstance(exc, IntegrityError) and "UNIQUE constraint failed" in str(orig)


async def _pieces(conn: AsyncConnection, *where: Any) -> list[Piece]:
    """Stored allocation rows, oldest first, as pieces to release."""
    return [payout.piece_of(r) for r in await conn.execute(payout.select_pieces().where(*where))]


async def _from(
    step: Callable[[AsyncConnection, int], Awaitable[PayoutReport]],
    after: int,
    conn: AsyncConnection,
) -> PayoutReport:
    return await step(conn, after)


class Hub:
    def __init__(
        self,
        engine: AsyncEngine,
        key: Ed25519PrivateKey,
        clock: Clock,
        provider: PaymentProvider,
        fetcher: ProofFetcher,
        config: HubConfig | None = None,
    ) -> None:
        self.engine = engine
        self.key = key
        self.clock = clock
        self.provider = provider
        self.fetcher = fetcher
        self.config = config or HubConfig()
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = b64u(raw)
        # Set when settlements were accepted: the runner's payout task wakes.
        self.payouts_wanted = asyncio.Event()
        self.acceptor = Acceptor(
            engine, key.sign, self.public_key, self.now, on_accepted=self.payouts_wanted.set
        )
        self.tokens = TokenDesk(engine, self.now, self.month, self.config.escrow_months)
        self.tokens.on_redeemed = self.payouts_wanted.set

    # -- plumbing ------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock.now().timestamp())

    def month(self) -> str:
        return utc_month(self.clock.now())

    async def _retrying(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `fn` in a transaction; again if PostgreSQL aborted it for a
        concurrent one (a unique row inserted meanwhile, a deadlock)."""
        for attempt in range(5):
            try:
                async with transaction(self.engine) as conn:
                    return await fn(conn)
            except DBAPIError as exc:
                if not _lost_a_race(exc) or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def info(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "public_key": self.public_key,
            "currency": money.CURRENCY,
            "creator_fee_percent": money.CREATOR_FEE_PERCENT,
            "deposit_methods": {
                m.name: {
                    "label": m.label,
                    "fixed_cents": m.fixed_cents,
                    "parts": m.parts,
                    "per": m.per,
                }
                for m in money.METHODS.values()
            },
            "min_deposit_cents": money.MIN_DEPOSIT_CENTS,
            "max_deposit_cents": money.MAX_DEPOSIT_CENTS,
            "min_withdrawal_cents": money.MIN_WITHDRAWAL_CENTS,
            "escrow_months": self.config.escrow_months,
            "must_give": self.config.must_give,
            "min_giving_cents": money.MIN_GIVING_CENTS,
        }

    # -- authentication -------------------------------------------------------------

    def check_signature(
        self, headers: Mapping[str, str], method: str, path_qs: str, body: bytes
    ) -> Auth:
        """Who signed this request (its signature and freshness checked); its
        nonce is spent by `spend_nonce`, or with the request's own writes."""
        try:
            account, nonce, ts = signing.check_request(headers, method, path_qs, body, self.now())
        except signing.SignatureError as exc:
            raise HubError(exc.code, str(exc)) from None
        return Auth(account, nonce, ts)

    async def spend_nonce(self, auth: Auth) -> None:
        """Record the request's nonce (a replay is refused) and open the
        account on its first signed request."""
        async with transaction(self.engine) as conn:
            done = await conn.execute(
                ledger.insert_ignore(conn, nonces).values(
                    account=auth.account, nonce=auth.nonce, ts=auth.ts
                )
            )
            if done.rowcount != 1:
                raise HubError("replayed", "this request was already received (its nonce is spent)")
            await conn.execute(
                ledger.insert_ignore(conn, accounts).values(id=auth.account, created_at=self.now())
            )

    async def forget_nonces(self) -> int:
        """Drop nonces too old to be replayed anyway (their timestamp is refused)."""
        async with transaction(self.engine) as conn:
            done = await conn.execute(
                delete(nonces).where(nonces.c.ts < self.now() - signing.NONCE_TTL_SECONDS)
            )
        return int(done.rowcount or 0)

    # -- accounts and deposits ---------------------------------------------------------

    async def account_view(self, account: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            user = await ledger.balance_cents(conn, User(account))
            creator = await ledger.balance_cents(conn, Creator(account))
            withheld = {
                a.month: cents
                for a, cents in (await ledger.balances(conn, Withheld, account)).items()
                if isinstance(a, Withheld)
            }
            owned = (
                await conn.execute(
                    select(creator_keys.c.key)
                    .where(creator_keys.c.owner == account)
                    .order_by(creator_keys.c.key)
                )
            ).scalars()
            nonprofit = await conn.scalar(
                select(accounts.c.nonprofit).where(accounts.c.id == account)
            )
            keys = list(owned)
            gross, fee = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(allocations.c.cents), 0),
                        func.coalesce(func.sum(allocations.c.fee_cents), 0),
                    ).where(allocations.c.recipient == account, allocations.c.state == "credited")
                )
            ).one()
            claimed = (
                await conn.execute(
                    select(claims.c.key)
                    .where(claims.c.account == account, claims.c.state == "pending")
                    .distinct()
                )
            ).scalars()
            escrow = {}
            for key in sorted(set(claimed) - set(keys)):
                held = await ledger.balance_cents(conn, Escrow(key))
                if held:
                    escrow[key] = held
        return {
            "account": account,
            "balance_cents": user,
            "creator_balance_cents": creator,
            # What a creator can take out now: the balance, once it reaches the
            # smallest withdrawal.
            "withdrawable_cents": creator if creator >= money.MIN_WITHDRAWAL_CENTS else 0,
            "min_withdrawal_cents": money.MIN_WITHDRAWAL_CENTS,
            # Everything credited so far: what givers gave, the hub's fee, the rest.
            "received": {
                "gross_cents": int(gross),
                "fee_cents": int(fee),
                "net_cents": int(gross) - int(fee),
            },
            "withheld_cents": sum(withheld.values()),
            # Per month: paid once the account gives at least MIN_GIVING_CENTS in it.
            "withheld": [
                {"month": month, "cents": cents}
                for month, cents in sorted(withheld.items())
                if cents
            ],
            "min_giving_cents": money.MIN_GIVING_CENTS,
            # Held under keys this account has claimed and not proved yet.
            "escrow": [{"key": k, "cents": c} for k, c in escrow.items()],
            "keys": keys,
            "nonprofit": bool(nonprofit),
        }

    async def deposit(self, account: str, req: DepositRequest) -> tuple[bool, dict[str, Any]]:
        """(created, deposit), once per id; the fee was checked at the edge."""
        deposit_id, quote = req.id, req.quote
        async with self.engine.connect() as conn:
            known = (
                await conn.execute(select(deposits).where(deposits.c.id == deposit_id))
            ).first()
        if known is not None:
            return False, self._same_deposit(known._asdict(), account, quote)
        result = await self.provider.charge(
            deposit_id, quote.method, quote.amount_cents, quote.fee_cents
        )
        if not result.ok:
            raise HubError("declined", f"the payment was declined ({result.reason})")

        async def record(conn: AsyncConnection) -> tuple[bool, dict[str, Any]]:
            row = (await conn.execute(select(deposits).where(deposits.c.id == deposit_id))).first()
            if row is not None:  # a concurrent retry recorded it first
                return False, self._same_deposit(row._asdict(), account, quote)
            m, amount, fee = quote.method, quote.amount_cents, quote.fee_cents
            entry = await ledger.post(
                conn,
                "deposit",
                deposit_id,
                {Provider(m): -(amount + fee), User(account): amount, ProviderFees(m): fee},
                self.now(),
            )
            values = {
                "id": deposit_id,
                "account": account,
                "method": m,
                "amount_cents": amount,
                "fee_cents": fee,
                "provider_ref": result.reference,
                "created_at": self.now(),
                "entry_id": entry,
            }
            await conn.execute(insert(deposits).values(values))
            return True, self._deposit_view(values)

        return await self._retrying(record)

    def _same_deposit(self, row: dict[str, Any], account: str, quote: Quote) -> dict[str, Any]:
        if (row["account"], row["method"], row["amount_cents"]) != (
            account,
            quote.method,
            quote.amount_cents,
        ):
            raise HubError("id_conflict", "this deposit id was used for another deposit")
        return self._deposit_view(row)

    @staticmethod
    def _deposit_view(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: row[k]
            for k in ("id", "method", "amount_cents", "fee_cents", "provider_ref", "created_at")
        }

    # -- settlements ----------------------------------------------------------------------

    async def settle(self, auth: Auth, req: SettlementRequest) -> tuple[bool, dict[str, Any]]:
        """(created, {receipt, signature}), accepted with the settlements
        arriving at the same moment in one commit (hub/accept.py). The same
        document again gives the same receipt; a different one for a settled
        month is refused. The request's nonce is spent in the same commit."""
        doc = req.document
        if doc.account != auth.account:
            raise HubError("forbidden", "the settlement names another account than the signer")
        try:
            signing.verify(doc.account, req.text.encode(), req.signature)
        except signing.SignatureError as exc:
            raise HubError("bad_signature", f"settlement: {exc}") from None
        ended = month_ended_everywhere(doc.month)
        now = self.clock.now()
        if now < ended:
            wait = int((ended - now).total_seconds()) + 1
            raise HubError(
                "month_not_ended",
                f"{doc.month} has not ended in every time zone yet; it is settled from "
                f"{timestamp(ended)}",
                settle_from=timestamp(ended),
                retry_after=wait,
            )
        if doc.unlinkable and self.tokens.expired(doc.month) and not await self._settled(doc):
            # Its money could never become tokens: the giver is not debited.
            raise HubError(
                "token_expired",
                f"{doc.month}'s tokens are no longer issued: settle it with allocations",
            )
        return await self.acceptor.accept(auth, req)

    async def _settled(self, doc: Settlement) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(settlements.c.month).where(
                    settlements.c.account == doc.account, settlements.c.month == doc.month
                )
            )
        return found is not None

    async def run_payouts(self) -> PayoutReport:
        """Route every pending allocation, then release what was withheld for
        owners who have given since: chunk after chunk, each one transaction
        (hub/payout.py). Several processes may run it at once."""
        report = PayoutReport()
        steps: list[Callable[[AsyncConnection, int], Awaitable[PayoutReport]]] = [
            lambda conn, after: payout.route_pending_chunk(
                conn, must_give=self.config.must_give, now=self.now(), after=after
            ),
            lambda conn, after: payout.release_withheld_chunk(conn, now=self.now(), after=after),
        ]
        for step in steps:
            after = 0  # each chunk goes on from the last one's last id
            while True:
                done = await self._retrying(functools.partial(_from, step, after))
                if not done.chunks:
                    break
                report.add(done)
                after = done.last_id
        return report

    async def _accept(
        self,
        conn: AsyncConnection,
        giver: str,
        month: str,
        pieces: Sequence[Piece],
        given_cents: int,
        now: int,
    ) -> Routed:
        """What the database says about the pieces' keys and people, read under
        lock, then `routing.route`; the same for a settlement and a direct
        transfer. Giving at least MIN_GIVING_CENTS marks `giver` as having given
        in `month` and releases what was withheld for that (`routing.release`)."""
        owners = await payout.lock_keys(conn, sorted({p.creator for p in pieces}))
        own = sorted(k for k, o in owners.items() if o == giver)
        if own:
            raise HubError(
                "own_key",
                "a payment cannot go to the giver's own creator keys: " + ", ".join(own),
                keys=own,
            )
        people = sorted({giver} | {o for o in owners.values() if o is not None})
        gave = await self._lock_giving(conn, people, month, own=giver)
        nonprofit = await payout.nonprofits(conn, people)
        legs: defaultdict[LedgerAccount, int] = defaultdict(int)
        if given_cents >= money.MIN_GIVING_CENTS and not gave[giver]:
            await conn.execute(
                update(giving)
                .where(giving.c.account == giver, giving.c.month == month)
                .values(gave=True)
            )
            gave[giver] = True
            withheld = await _pieces(
                conn,
                allocations.c.recipient == giver,
                allocations.c.state == "withheld",
                allocations.c.withheld_month == month,
            )
            if withheld:
                released = routing.release(
                    withheld,
                    source=Withheld(giver, month),
                    owner=giver,
                    gave=True,
                    nonprofit=nonprofit[giver],
                    must_give=self.config.must_give,
                    month=month,
                    now=now,
                )
                await payout.apply(conn, released)
                for name, cents in released.legs.items():
                    legs[name] += cents
        routed = routing.route(
            pieces,
            owners=owners,
            gave=gave,
            nonprofit=nonprofit,
            must_give=self.config.must_give,
            now=now,
        )
        await payout.apply(conn, routed)
        for name, cents in routed.legs.items():
            legs[name] += cents
        legs[User(giver)] -= given_cents
        routed.legs = legs
        return routed

    async def _lock_giving(
        self, conn: AsyncConnection, people: list[str], month: str, *, own: str | None = None
    ) -> dict[str, bool]:
        """Whether each of `people` gave in `month`, the rows locked in account
        order: `own` (the settler, whose row may change) exclusively, the
        others shared. Taking every lock in one order, each in its final mode,
        is what keeps two settlements from deadlocking."""
        if not people:
            return {}
        await conn.execute(
            ledger.insert_ignore(conn, giving), [{"account": p, "month": month} for p in people]
        )
        gave: dict[str, bool] = {}
        ordered = sorted(people)
        cut = ordered.index(own) if own in ordered else len(ordered)
        parts = [(ordered[:cut], True), (ordered[cut : cut + 1], False), (ordered[cut + 1 :], True)]
        for group, shared in parts:
            if not group:
                continue
            rows = await conn.execute(
                select(giving.c.account, giving.c.gave)
                .where(giving.c.month == month, giving.c.account.in_(group))
                .order_by(giving.c.account)
                .with_for_update(read=shared)
            )
            gave.update({a: bool(g) for a, g in rows})
        return gave

    async def _count(
        self,
        conn: AsyncConnection,
        account: str,
        pieces: Sequence[Piece],
    ) -> None:
        """Count `account` once per creator and thing it paid. Counters are
        counted when read (an index range of `counter_people`), so no
        popular thing's counter row is a lock every settlement queues on."""
        subjects = {("creator", p.creator) for p in pieces} | {
            ("thing", p.url) for p in pieces if p.url is not None
        }
        if not subjects:
            return
        await conn.execute(
            ledger.insert_ignore(conn, counter_people).values(
                [
                    {
                        "kind": kind,
                        "subject_hash": hashlib.sha256(subject.encode()).hexdigest(),
                        "account": account,
                    }
                    for kind, subject in sorted(subjects)
                ]
            )
        )

    # -- direct transfers ---------------------------------------------------------------

    async def transfer(self, account: str, req: TransferRequest) -> tuple[bool, dict[str, Any]]:
        """A one-off amount to one creator, outside the month's split: (created,
        {receipt, signature}). Its money goes as a flattr's does (fee, "to
        receive, you must give", escrow) in the hub's current month. The same
        client id again returns the same receipt; with another body, 409."""

        async def run(conn: AsyncConnection) -> tuple[bool, dict[str, Any]]:
            known = (
                await conn.execute(
                    select(transfers)
                    .where(transfers.c.account == account, transfers.c.id == req.id)
                    .with_for_update()
                )
            ).first()
            if known is not None:
                if known.sha256 != req.sha256:
                    raise HubError("id_conflict", "this transfer id was used for another transfer")
                return False, {"receipt": known.receipt, "signature": known.receipt_signature}
            return True, await self._transfer(conn, account, req)

        return await self._retrying(run)

    async def _transfer(
        self, conn: AsyncConnection, account: str, req: TransferRequest
    ) -> dict[str, Any]:
        now, month = self.now(), self.month()
        have = await ledger.balance_cents(conn, User(account))
        if have < req.cents:
            raise HubError(
                "insufficient_funds",
                f"the balance is {euros(have)}, less than the {euros(req.cents)} to give",
                balance_cents=have,
            )
        piece = Piece(
            giver=account,
            month=month,
            creator=req.creator,
            cents=req.cents,
            url=req.url,
            transfer_id=req.id,
        )
        routed = await self._accept(conn, account, month, [piece], req.cents, now)
        # The giver counts once for the creator (and the thing): real money,
        # at least MIN_TRANSFER_CENTS, so no free account inflates a counter.
        await self._count(conn, account, [piece])
        try:
            await ledger.post(conn, "transfer", f"{account}:{req.id}", routed.legs, now)
        except ledger.InsufficientFunds:
            raise HubError(
                "insufficient_funds", "the balance does not cover the transfer"
            ) from None
        receipt_text, receipt_signature = TransferReceipt(
            hub=self.public_key,
            account=account,
            transfer=req.id,
            sha256=req.sha256,
            month=month,
            creator=req.creator,
            cents=req.cents,
            credited_cents=routed.credited_cents,
            held_cents=routed.held_cents,
            received_at=now,
        ).sign(self.key.sign)
        await conn.execute(
            insert(transfers).values(
                account=account,
                id=req.id,
                month=month,
                creator=req.creator,
                cents=req.cents,
                sha256=req.sha256,
                receipt=receipt_text,
                receipt_signature=receipt_signature,
                received_at=now,
            )
        )
        return {"receipt": receipt_text, "signature": receipt_signature}

    async def settlement(self, account: str, month: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(settlements.c.receipt, settlements.c.receipt_signature).where(
                        settlements.c.account == account, settlements.c.month == month
                    )
                )
            ).first()
            if row is None:
                raise HubError("not_found", f"no settlement for {month}")
            states = await conn.execute(
                select(allocations.c.state, func.sum(allocations.c.cents))
                .where(
                    allocations.c.account == account,
                    allocations.c.month == month,
                    allocations.c.transfer_id.is_(None),
                )
                .group_by(allocations.c.state)
            )
            now = {str(state): int(cents) for state, cents in states}
        # The receipt says what happened when the settlement was accepted; the
        # outcome, what has happened to its money since (withheld money is
        # credited once its creator gives, escrow once a key is proved or
        # returned after the escrow period).
        outcome = {f"{s}_cents": now.get(s, 0) for s in OUTCOME_STATES}
        return {"receipt": row.receipt, "signature": row.receipt_signature, "outcome": outcome}

    # -- creators ----------------------------------------------------------------------

    async def claim(self, account: str, key: str) -> dict[str, Any]:
        """Start proving `key` (checked by hub.requests.claim)."""
        # Hex ids: a base64url one may start with "-", which `mecene creator
        # verify ID` would take for an option.
        claim = {
            "id": secrets.token_hex(12),
            "account": account,
            "key": key,
            "token": "mecene-claim-" + b64u(secrets.token_bytes(18)),
            "state": "pending",
            "created_at": self.now(),
        }
        async with transaction(self.engine) as conn:
            owner = await conn.scalar(select(creator_keys.c.owner).where(creator_keys.c.key == key))
            if owner is not None and owner != account:
                raise HubError("key_taken", f"{key} is already proved by another account")
            await conn.execute(insert(claims).values(claim))
        return self._claim_view(claim)

    @staticmethod
    def _claim_view(claim: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: claim.get(k) for k in ("id", "key", "token", "state", "created_at")}
        out["where"] = where_to_prove(str(claim["key"]))
        out["verified_at"] = claim.get("verified_at")
        out["proof"] = claim.get("proof")
        return out

    async def verify_claim(self, account: str, claim_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(claims).where(claims.c.id == claim_id, claims.c.account == account)
                )
            ).first()
        if row is None:
            raise HubError("not_found", "no such claim")
        if row.state == "verified":
            return {"claim": self._claim_view(row._asdict()), "released_cents": 0}
        try:
            proof = await self.fetcher.prove(row.key, row.token)
        except ProofError as exc:
            raise HubError("not_proven", f"{row.key} is not proved yet: {exc}") from None
        released = await self._retrying(
            lambda conn: self._own_key(conn, account, row.key, "proof", claim_id, proof)
        )
        view = self._claim_view({**row._asdict(), "state": "verified", "proof": proof})
        return {"claim": view, "released_cents": released}

    async def issue_flattr_id(self, account: str) -> dict[str, Any]:
        """The account's `flattr:` id, owned by it from the start: put it in
        `<meta name="flattr:id" content="…">` on the creator's pages. One per
        account: issued on the first call (`new`), the same one afterwards."""

        async def run(conn: AsyncConnection) -> dict[str, Any]:
            # The account's row, locked: two calls at once issue one id.
            await conn.execute(
                select(accounts.c.id).where(accounts.c.id == account).with_for_update()
            )
            issued = await conn.scalar(
                select(creator_keys.c.key)
                .where(creator_keys.c.owner == account, creator_keys.c.method == "issued")
                .order_by(creator_keys.c.verified_at, creator_keys.c.key)
                .limit(1)
            )
            new = issued is None
            key = "flattr:m" + secrets.token_hex(6) if new else str(issued)
            if new:
                await self._own_key(conn, account, key, "issued", None, None)
            return {"key": key, "meta": f'<meta name="flattr:id" content="{key[7:]}">', "new": new}

        return await self._retrying(run)

    async def _own_key(
        self,
        conn: AsyncConnection,
        account: str,
        key: str,
        method: str,
        claim_id: str | None,
        proof: str | None,
    ) -> int:
        """Make `account` the owner of `key` and release its escrow; the gross released."""
        owners = await payout.lock_keys(conn, [key], exclusive=True)
        if owners[key] not in (None, account):
            raise HubError("key_taken", f"{key} is already proved by another account")
        now = self.now()
        await conn.execute(
            update(creator_keys)
            .where(creator_keys.c.key == key)
            .values(owner=account, verified_at=now, method=method)
        )
        if claim_id is not None:
            await conn.execute(
                update(claims)
                .where(claims.c.id == claim_id)
                .values(state="verified", verified_at=now, proof=proof)
            )
        pieces = await _pieces(conn, allocations.c.creator == key, allocations.c.state == "escrow")
        if not pieces:
            return 0
        # Released now: it counts as received this month, so "to receive, you
        # must give" looks at this month's giving (withheld until it happens,
        # under the month of release, whatever month it was given in).
        month = self.month()
        gave = (await self._lock_giving(conn, [account], month))[account]
        released = routing.release(
            pieces,
            source=Escrow(key),
            owner=account,
            gave=gave,
            nonprofit=(await payout.nonprofits(conn, [account]))[account],
            must_give=self.config.must_give,
            month=month,
            now=now,
        )
        await payout.apply(conn, released)
        await ledger.post(conn, "escrow-release", f"{key}:{account}:{now}", released.legs, now)
        return released.gross_cents

    async def expire_escrow(self) -> int:
        """Give back to the givers what waited in escrow longer than the escrow
        period; returns the cents returned."""
        # Money for month M was settled when M ended: it has waited the whole
        # period once the month M + period + 1 has begun.
        limit = add_months(self.month(), -(self.config.escrow_months + 1))
        async with self.engine.connect() as conn:
            keys = list(
                (
                    await conn.execute(
                        select(allocations.c.creator)
                        .where(
                            allocations.c.state == "escrow",
                            allocations.c.month <= limit,
                            # A redeemed token's money has no giver to go back to:
                            # it waits in escrow for whoever proves the key.
                            allocations.c.account != NO_GIVER,
                        )
                        .distinct()
                        .order_by(allocations.c.creator)
                    )
                ).scalars()
            )
        returned = 0
        for key in keys:

            async def run(conn: AsyncConnection, key: str = key) -> int:
                owners = await payout.lock_keys(conn, [key], exclusive=True)
                if owners[key] is not None:
                    return 0  # proved meanwhile: released, not returned
                rows = (
                    await conn.execute(
                        select(allocations.c.id, allocations.c.account, allocations.c.cents).where(
                            allocations.c.creator == key,
                            allocations.c.state == "escrow",
                            allocations.c.month <= limit,
                            allocations.c.account != NO_GIVER,
                        )
                    )
                ).all()
                if not rows:
                    return 0  # another hub process returned them first
                legs: defaultdict[LedgerAccount, int] = defaultdict(int)
                for r in rows:
                    legs[User(r.account)] += int(r.cents)
                    legs[Escrow(key)] -= int(r.cents)
                ids = [r.id for r in rows]
                await conn.execute(
                    update(allocations)
                    .where(allocations.c.id.in_(ids))
                    .values(state="returned", settled_at=self.now())
                )
                await ledger.post(conn, "escrow-return", f"{key}:{limit}", legs, self.now())
                return sum(int(r.cents) for r in rows)

            returned += await self._retrying(run)
        return returned

    async def withdraw(self, account: str, req: WithdrawalRequest) -> tuple[bool, dict[str, Any]]:
        withdrawal_id, amount = req.id, req.amount_cents
        async with self.engine.connect() as conn:
            known = (
                await conn.execute(select(withdrawals).where(withdrawals.c.id == withdrawal_id))
            ).first()
            have = await ledger.balance_cents(conn, Creator(account))
        if known is not None:
            if (known.account, known.amount_cents) != (account, amount):
                raise HubError("id_conflict", "this withdrawal id was used for another")
            return False, self._withdrawal_view(known._asdict())
        if have < amount:
            raise HubError(
                "insufficient_funds",
                f"the creator balance is {euros(have)}, less than {euros(amount)}",
                balance_cents=have,
            )

        async def run(conn: AsyncConnection) -> dict[str, Any]:
            try:
                entry = await ledger.post(
                    conn,
                    "withdrawal",
                    withdrawal_id,
                    {Creator(account): -amount, Payouts(): amount},
                    self.now(),
                )
            except ledger.InsufficientFunds:
                raise HubError("insufficient_funds", "the creator balance is too low") from None
            result = await self.provider.pay_out(withdrawal_id, amount)
            if not result.ok:  # rolls the entry back with the transaction
                raise HubError("declined", f"the payout was declined ({result.reason})")
            values = {
                "id": withdrawal_id,
                "account": account,
                "amount_cents": amount,
                "provider_ref": result.reference,
                "created_at": self.now(),
                "entry_id": entry,
            }
            await conn.execute(insert(withdrawals).values(values))
            return self._withdrawal_view(values)

        return True, await self._retrying(run)

    @staticmethod
    def _withdrawal_view(row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in ("id", "amount_cents", "provider_ref", "created_at")}

    async def set_nonprofit(self, account: str, nonprofit: bool) -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(
                ledger.insert_ignore(conn, accounts).values(id=account, created_at=self.now())
            )
            await conn.execute(
                update(accounts).where(accounts.c.id == account).values(nonprofit=nonprofit)
            )

    # -- counters and reports -------------------------------------------------------------

    async def count(self, kind: str, subject: str) -> int:
        h = hashlib.sha256(subject.encode()).hexdigest()
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(counter_people)
                .where(counter_people.c.kind == kind, counter_people.c.subject_hash == h)
            )
        return int(value or 0)

    async def redemptions(self, creator: str) -> int:
        """How many unlinkable tokens went to `creator` (a count of tokens,
        not of people: the hub cannot tell whose they were)."""
        h = hashlib.sha256(creator.encode()).hexdigest()
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(spent_tokens)
                .where(spent_tokens.c.creator_hash == h)
            )
        return int(value or 0)

    async def joined_keys(self) -> tuple[list[str], list[str]]:
        """Every proved creator key, sorted, and those of non-profits (no fee):
        published whole, so that a daemon never asks about one key (which
        would tell the hub what its person reads)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(creator_keys.c.key, accounts.c.nonprofit)
                .join(accounts, accounts.c.id == creator_keys.c.owner)
                .order_by(creator_keys.c.key)
            )
            found = [(str(key), bool(nonprofit)) for key, nonprofit in rows]
        return [k for k, _ in found], [k for k, nonprofit in found if nonprofit]

    async def payouts(self, month: str) -> dict[str, Any]:
        """What each creator account received from `month`'s settlements, and
        what is held (escrow, withheld) or was returned."""
        async with self.engine.connect() as conn:
            per = await conn.execute(
                select(
                    allocations.c.recipient,
                    func.count(),
                    func.sum(allocations.c.cents),
                    func.sum(allocations.c.fee_cents),
                )
                .where(allocations.c.month == month, allocations.c.state == "credited")
                .group_by(allocations.c.recipient)
                .order_by(allocations.c.recipient)
            )
            creators = [
                {
                    "account": r,
                    "allocations": int(n),
                    "gross_cents": int(g),
                    "fee_cents": int(f or 0),
                    "net_cents": int(g) - int(f or 0),
                }
                for r, n, g, f in per
            ]
            states = await conn.execute(
                select(allocations.c.state, func.sum(allocations.c.cents))
                .where(allocations.c.month == month)
                .group_by(allocations.c.state)
            )
            totals = {s: int(c) for s, c in states}
        return {"month": month, "creators": creators, "totals_cents": totals}

    async def books(self) -> dict[str, int]:
        """The ledger's invariants (hub/ledger.py, `check_books`), and one of
        the hub's: the unrouted money is exactly the pending allocations' (a
        redeemed token's waits in its month's tokens until it is routed)."""
        async with self.engine.connect() as conn:
            books = await ledger.check_books(conn)
            unrouted = sum((await ledger.balances(conn, Unrouted)).values())
            pending = await conn.scalar(
                select(func.coalesce(func.sum(allocations.c.cents), 0)).where(
                    allocations.c.state == "pending", allocations.c.account != NO_GIVER
                )
            )
        return {**books, "unrouted_not_pending_cents": unrouted - int(pending or 0)}

    async def fees_cents(self) -> int:
        async with self.engine.connect() as conn:
            return sum((await ledger.balances(conn, Fees)).values())

    async def balance_of(self, account: LedgerAccount | str) -> int:
        """A ledger account's balance, typed or by its stored name."""
        if isinstance(account, str):
            account = ledger.parse_account(account)
        async with self.engine.connect() as conn:
            return await ledger.balance_cents(conn, account)
