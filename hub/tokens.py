"""Unlinkable contributions at the hub (DESIGN.md, "Unlinkable contributions").

1. **Keys.** One RSA-2048 key per month, of the one denomination
   (mecene/tokens.py: 10 cents), made the first time the month's key is
   asked for, shared by every hub process through the database, published
   with its id (`GET /v1/token-keys/{month}`).
2. **The spend.** An unlinkable month's settlement carries the spend and no
   allocation; accepting it (hub/accept.py) debits the giver into the
   month's `Tokens` money, once, as any settlement.
3. **Issuance.** `POST /v1/tokens`, signed as the account: blinded token
   requests of the month's key, as many as that settlement's spend buys. The hub
   signs them blindly and keeps the answer: the same request again gets it
   again, never signed again (a free repeat of a large issuance would cost
   seconds of CPU each); another request for the month is refused. The
   answer is dropped once the month's tokens expire (`forget_answers`).
4. **Redemption.** `POST /v1/tokens/redeem`, with no account and no
   signature: a token, its prefix and a creator key. The hub checks the
   signature, that the key's month is not expired and that the token was
   never spent (a primary key, so across processes), and appends the token's
   money as a pending allocation with no giver: the payout run routes it as
   any other (fee, "to receive, you must give", escrow), taking its cents
   from the month's `Tokens` money then. A redemption writes two rows and
   touches no balance; redemptions arriving together share one commit
   (hub/groupcommit.py). The same token to the same creator again is
   answered again; to another creator, refused.
5. **The report.** `mecene-hub tokens`: per month, what was issued and
   redeemed and the money still held for tokens (`report`).

No row written here ties an account to a creator key: `token_issues` names
the account and its month, `spent_tokens` and the allocations name the
creator and no account.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mecene import blindrsa, tokens, tokenwire
from mecene.encoding import b64u, unb64u
from mecene.time import add_months, month_start, timestamp_at

from . import admit, bulk, ledger
from .core import lost_a_race
from .db import transaction
from .errors import HubError
from .groupcommit import GroupCommit, Outcome
from .ledger import Tokens, User
from .routing import NO_GIVER
from .schema import (
    allocations,
    giving,
    settlements,
    spent_tokens,
    token_issues,
    token_keys,
)


@dataclass(frozen=True)
class TokenKey:
    id: str  # hex
    month: str
    denomination_cents: int
    public: rsa.RSAPublicKey
    private: rsa.RSAPrivateKey

    def published(self) -> tokenwire.DirectoryKey:
        return tokenwire.DirectoryKey(
            tokenwire.key_bytes(self.id), self.denomination_cents, self.public
        )


# The parsed requests are the protocol's own (mecene/tokenwire.py).
IssueRequest = tokenwire.IssueRequest
RedeemRequest = tokenwire.Redemption


def issue_request(body: Any) -> IssueRequest:
    """POST /v1/tokens's body, parsed (HubError if it does not)."""
    try:
        return tokenwire.parse_issue(body)
    except tokenwire.WireError as exc:
        raise HubError(exc.code, str(exc)) from None


def redeem_request(body: Any) -> RedeemRequest:
    """POST /v1/tokens/redeem's body, parsed (HubError if it does not)."""
    try:
        return tokenwire.parse_redemption(body)
    except tokenwire.WireError as exc:
        raise HubError(exc.code, str(exc)) from None


class TokenDesk:
    """The hub's keys, issuance and redemption; one per hub process."""

    def __init__(
        self,
        engine: AsyncEngine,
        now: Callable[[], int],
        month: Callable[[], str],
        escrow_months: int,
        sign: Callable[[bytes], bytes],
        hub_key: str,
    ) -> None:
        self.engine = engine
        self.sign = sign  # the hub's Ed25519 key: directories and issuance receipts
        self.hub_key = hub_key
        self.now = now  # Unix seconds
        self.month = month  # the hub's current month
        self.escrow_months = escrow_months
        self._keys: dict[str, TokenKey] = {}
        self._months: dict[str, list[TokenKey]] = {}
        self._published: dict[str, dict[str, Any]] = {}
        self._making = asyncio.Lock()
        self.on_redeemed: Callable[[], None] | None = None  # the payout run is wanted
        # One token once per batch: a second copy meets the first as spent.
        self._redeemed: GroupCommit[Redemption] = GroupCommit(
            engine,
            self._write_redemptions,
            key=lambda r: r.spent,
            what="redemptions",
            on_created=lambda: self.on_redeemed() if self.on_redeemed is not None else None,
        )

    def redeemable_until(self, month: str) -> int:
        """A month's tokens are redeemable as long as its escrow would wait:
        until the month `escrow_months + 1` after it begins (UTC)."""
        return int(month_start(add_months(month, self.escrow_months + 1), "UTC").timestamp())

    def expired(self, month: str) -> bool:
        return self.now() >= self.redeemable_until(month)

    async def keys_of(self, month: str) -> list[TokenKey]:
        """The month's key, of the one denomination, made if it is not yet
        (a list of one). Keys of other denominations made by earlier
        versions still redeem what they signed (`key`), and sign nothing."""
        if self.expired(month):  # before the cache: a process runs for months
            raise HubError("token_expired", f"{month}'s tokens are no longer issued or redeemed")
        if month in self._months:
            return self._months[month]
        if month > add_months(self.month(), 1):
            raise HubError(
                "not_found",
                f"{month}'s token keys are published from the month before it, not earlier",
            )
        async with self._making:
            found = await self._load(month)
            missing = [
                d for d in (tokens.DENOMINATION,) if d not in {k.denomination_cents for k in found}
            ]
            if missing:
                made = [await asyncio.to_thread(_make_key) for _ in missing]
                async with transaction(self.engine) as conn:
                    rows = [
                        {
                            "id": tokenwire.key_hex(tokens.key_id(private.public_key())),
                            "month": month,
                            "denomination_cents": d,
                            "public_key": b64u(tokens.spki(private.public_key())),
                            "private_key": private.private_bytes(
                                serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption(),
                            ).decode(),
                            "created_at": self.now(),
                        }
                        for d, private in zip(missing, made, strict=True)
                    ]
                    # Another process may have made them meanwhile: its keys win.
                    await bulk.insert_many(conn, token_keys, rows, ignore=True)
                found = await self._load(month)
            found = [k for k in found if k.denomination_cents == tokens.DENOMINATION]
            self._months[month] = found
            return found

    async def _load(self, month: str) -> list[TokenKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(token_keys).where(token_keys.c.month == month))).all()
        out = []
        for r in rows:
            key = self._keys.get(r.id)
            if key is None:
                private = serialization.load_pem_private_key(r.private_key.encode(), None)
                assert isinstance(private, rsa.RSAPrivateKey)
                key = TokenKey(
                    r.id, r.month, int(r.denomination_cents), private.public_key(), private
                )
                self._keys[r.id] = key
                if r.plain_id:
                    self._keys[r.plain_id] = key  # tokens signed before 0011 name it
            out.append(key)
        return out

    async def key(self, key_id: str) -> TokenKey | None:
        known = self._keys.get(key_id)
        if known is not None:
            return known
        async with self.engine.connect() as conn:
            month = await conn.scalar(
                select(token_keys.c.month).where(
                    or_(token_keys.c.id == key_id, token_keys.c.plain_id == key_id)
                )
            )
        if month is None:
            return None
        await self._load(month)
        return self._keys.get(key_id)

    async def published(self, month: str) -> dict[str, Any]:
        """The month's key directory, signed: the same for everyone who asks,
        from the month before it on (made in advance by `prepare`)."""
        keys_ = await self.keys_of(month)  # first: an expired month is refused
        if month in self._published:
            return self._published[month]
        body = tokenwire.build_directory(
            tokenwire.KeyDirectory(
                month,
                timestamp_at(self.redeemable_until(month)),
                tuple(k.published() for k in keys_),
            ),
            self.hub_key,
        )
        self._published[month] = tokenwire.sign_directory(body, self.sign)
        return self._published[month]

    async def prepare(self) -> None:
        """Make this month's and next month's keys if they are not yet (the
        hub's upkeep): a month's key is fixed, and published, before the
        month begins."""
        for month in (self.month(), add_months(self.month(), 1)):
            await self.keys_of(month)

    # -- issuance ------------------------------------------------------------------

    async def issue(self, account: str, req: IssueRequest) -> tuple[bool, dict[str, Any]]:
        """Blind signatures for a month's tokens, or a direct transfer's, in
        the requests' order."""
        if req.transfer is None:
            spend = await _unlinkable_spend(self.engine, account, req.month)
        else:
            spend = req.transfer[1]
            if req.month not in (self.month(), add_months(self.month(), -1)):
                raise HubError("invalid", "a transfer's tokens are of this month's keys")
        by_id = {k.id: k for k in await self.keys_of(req.month)}
        wanted = []
        for kid, blinded in req.requests:
            key = by_id.get(tokenwire.key_hex(kid))
            if key is None:
                raise HubError(
                    "invalid", f"{tokenwire.key_hex(kid)} is not one of {req.month}'s token keys"
                )
            wanted.append((key, blinded))
        total = sum(k.denomination_cents for k, _b in wanted)
        if total != spend:
            what = "the month's spend" if req.transfer is None else "the transfer"
            raise HubError("invalid", f"the tokens are worth {total} cents; {what} is {spend}")

        ref = req.ref
        where = (token_issues.c.account == account) & (token_issues.c.ref == ref)
        async with self.engine.connect() as conn:
            known = (
                await conn.execute(
                    select(token_issues.c.sha256, token_issues.c.answer).where(where)
                )
            ).first()
        if known is not None and known.sha256 != req.sha256:
            raise HubError("tokens_issued", f"{req.month}'s tokens were issued already")
        if known is not None and known.answer is not None:
            # A repeat (a daemon that crashed before it saw the answer): the
            # first answer again, never signed again (issue 27, point 9).
            return False, await self._answer(account, req, known.answer)
        try:
            signatures = await asyncio.to_thread(
                lambda: [blindrsa.blind_sign(k.private, b) for k, b in wanted]
            )
        except blindrsa.BlindSignatureError as exc:
            raise HubError("invalid", f"a token request: {exc}") from None
        answer = b64u(b"".join(signatures))
        for attempt in range(2):
            try:
                return await self._keep_answer(account, req, wanted, total, answer)
            except DBAPIError as exc:
                # The same request at the same moment kept its answer first
                # (the row was inserted meanwhile): answered from it.
                if not lost_a_race(exc) or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _keep_answer(
        self,
        account: str,
        req: IssueRequest,
        wanted: list[tuple[TokenKey, bytes]],
        total: int,
        answer: str,
    ) -> tuple[bool, dict[str, Any]]:
        where = (token_issues.c.account == account) & (token_issues.c.ref == req.ref)
        async with transaction(self.engine) as conn:
            known = (
                await conn.execute(
                    select(token_issues.c.sha256, token_issues.c.answer)
                    .where(where)
                    .with_for_update()
                )
            ).first()
            if known is not None and known.sha256 != req.sha256:
                raise HubError("tokens_issued", f"{req.month}'s tokens were issued already")
            if known is None:
                await conn.execute(
                    insert(token_issues).values(
                        account=account,
                        ref=req.ref,
                        month=req.month,
                        sha256=req.sha256,
                        cents=total,
                        tokens=len(wanted),
                        created_at=to_the_hour(self.now()),
                        answer=answer,
                    )
                )
                if req.transfer is not None:
                    await _debit_transfer(conn, account, req.month, req.transfer, self.now())
            elif known.answer is None:  # issued before answers were kept
                await conn.execute(update(token_issues).where(where).values(answer=answer))
            else:  # the same request at the same moment: its answer
                return False, await self._answer(account, req, known.answer)
        return known is None, await self._answer(account, req, answer)

    async def _answer(self, account: str, req: IssueRequest, kept: str) -> dict[str, Any]:
        """The blind signatures and the signed receipt naming the month's key
        directory (the same text for a repeat: it holds no time)."""
        raw = unb64u(kept)
        signatures = tuple(raw[i : i + tokens.NK] for i in range(0, len(raw), tokens.NK))
        directory = tokenwire.directory_sha256(await self.published(req.month))
        text, signature = tokenwire.IssueReceipt(
            self.hub_key, account, req.ref, req.month, req.sha256, len(signatures), directory
        ).sign(self.sign)
        return tokenwire.build_issue_answer(
            tokenwire.IssueAnswer(req.month, signatures, text, signature)
        )

    async def forget_answers(self) -> int:
        """Drop the kept answers of months whose tokens expired: nothing can
        be issued or redeemed for them any more."""
        async with transaction(self.engine) as conn:
            done = await conn.execute(
                update(token_issues)
                .where(token_issues.c.answer.is_not(None))
                .where(token_issues.c.month < self._oldest_live_month())
                .values(answer=None)
            )
        return int(done.rowcount or 0)

    def _oldest_live_month(self) -> str:
        """The oldest month whose tokens are not expired."""
        month = self.month()
        while not self.expired(add_months(month, -1)):
            month = add_months(month, -1)
        return month

    # -- redemption ----------------------------------------------------------------

    async def redeem(self, req: RedeemRequest) -> tuple[bool, dict[str, Any]]:
        token = req.token
        key = await self.key(tokenwire.key_hex(token.key_id))
        if key is None:
            raise HubError("bad_token", "the token names no key of this hub")
        if self.expired(key.month):
            raise HubError(
                "token_expired",
                f"{key.month}'s tokens were redeemable until "
                f"{timestamp_at(self.redeemable_until(key.month))}",
            )
        try:
            token.verify(key.public, req.prefix)
        except tokens.TokenError as exc:
            raise HubError("bad_token", str(exc)) from None
        return await self._redeemed.submit(Redemption(token.spent_id(), key, req.creator))

    async def _write_redemptions(
        self, conn: AsyncConnection, batch: Sequence[Redemption]
    ) -> list[Outcome]:
        """Redemptions arriving at one moment, in one transaction: their spent
        tokens in one statement (the primary key refuses a token spent
        before, also by another process), a pending allocation with no giver
        for each new one (its fee unit is the token). Its cents stay in the
        month's `Tokens` money until the payout run routes it
        (hub/payout.py): a redemption touches no balance row, so redemptions
        in every process never queue on the month's one."""
        now = self.now()
        fresh = {
            row.id
            for row in await conn.execute(
                ledger.insert_ignore(conn, spent_tokens)
                .values(
                    [
                        {
                            "id": r.spent,
                            "key_id": r.key.id,
                            "month": r.key.month,
                            "creator": r.creator,
                            "creator_hash": hashlib.sha256(r.creator.encode()).hexdigest(),
                            "cents": r.key.denomination_cents,
                            "redeemed_at": to_the_hour(now),
                        }
                        for r in batch
                    ]
                )
                .returning(spent_tokens.c.id)
            )
        }
        again = [r.spent for r in batch if r.spent not in fresh]
        went = {}
        if again:
            went = dict(
                (
                    await conn.execute(
                        select(spent_tokens.c.id, spent_tokens.c.creator).where(
                            bulk.one_of(conn, spent_tokens.c.id, again)
                        )
                    )
                ).all()
            )
        outcomes: list[Outcome] = []
        for r in batch:
            if r.spent in fresh:
                outcomes.append((True, r.answer()))
            elif went.get(r.spent) == r.creator:
                outcomes.append((False, r.answer()))  # the same again: answered again
            else:
                outcomes.append(HubError("token_spent", "this token was spent already"))
        await bulk.insert_many(
            conn,
            allocations,
            [
                {
                    "account": NO_GIVER,
                    "month": r.key.month,
                    "creator": r.creator,
                    "url": None,
                    "cents": r.key.denomination_cents,
                    "state": "pending",
                    "transfer_id": r.spent,
                }
                for r in batch
                if r.spent in fresh
            ],
        )
        return outcomes


# -- issuance's money --------------------------------------------------------


async def _unlinkable_spend(engine: AsyncEngine, account: str, month: str) -> int:
    """What an unlinkable settlement spent: its tokens' worth."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(settlements.c.unlinkable, settlements.c.spend_cents).where(
                    settlements.c.account == account, settlements.c.month == month
                )
            )
        ).first()
    if row is None:
        raise HubError("not_found", f"no settlement for {month}: send it first")
    if not row.unlinkable:
        raise HubError("not_unlinkable", f"{month} was settled with allocations, not as tokens")
    return int(row.spend_cents)


async def _debit_transfer(
    conn: AsyncConnection, account: str, month: str, transfer: tuple[str, int], now: int
) -> None:
    """A direct transfer's money, from the giver into the month's tokens,
    once (the issuance row above is the idempotency); giving at least the
    least a month gives counts as giving that month."""
    transfer_id, cents = transfer
    try:
        await ledger.post(
            conn,
            "transfer-tokens",
            f"{account}:{transfer_id}",
            {User(account): -cents, Tokens(month): cents},
            now,
        )
    except ledger.InsufficientFunds:
        have = await ledger.balance_cents(conn, User(account))
        raise admit.insufficient(
            admit.Kind.TRANSFER_TOKENS, spend_cents=cents, balance_cents=have
        ) from None
    if admit.gives(cents):
        stmt = ledger.upsert(conn, giving).values(account=account, month=month, gave=True)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[giving.c.account, giving.c.month], set_={"gave": True}
            )
        )


# -- the operator's report -------------------------------------------------------


async def report(desk: TokenDesk) -> list[dict[str, Any]]:
    """Each month's tokens, oldest first: what was issued and redeemed,
    the money still held for them (its `Tokens` balance), and whether the
    month has expired. What an expired month still holds is money whose
    tokens were never redeemed: nobody is known to return it to (the hub
    never knew whose tokens they were), so it stays in the books, here."""
    async with desk.engine.connect() as conn:
        issued = {
            r.month: (int(r.tokens), int(r.cents))
            for r in await conn.execute(
                select(
                    token_issues.c.month,
                    func.sum(token_issues.c.tokens).label("tokens"),
                    func.sum(token_issues.c.cents).label("cents"),
                ).group_by(token_issues.c.month)
            )
        }
        redeemed = {
            r.month: (int(r.tokens), int(r.cents))
            for r in await conn.execute(
                select(
                    spent_tokens.c.month,
                    func.count().label("tokens"),
                    func.sum(spent_tokens.c.cents).label("cents"),
                ).group_by(spent_tokens.c.month)
            )
        }
        held = {
            account.month: cents
            for account, cents in (await ledger.balances(conn, Tokens)).items()
            if isinstance(account, Tokens)
        }
    out = []
    for month in sorted(set(issued) | set(redeemed) | set(held)):
        n_issued, c_issued = issued.get(month, (0, 0))
        n_redeemed, c_redeemed = redeemed.get(month, (0, 0))
        out.append(
            {
                "month": month,
                "issued": {"tokens": n_issued, "cents": c_issued},
                "redeemed": {"tokens": n_redeemed, "cents": c_redeemed},
                "unredeemed": {"tokens": n_issued - n_redeemed, "cents": c_issued - c_redeemed},
                "held_cents": held.get(month, 0),
                "redeemable_until": timestamp_at(desk.redeemable_until(month)),
                "expired": desk.expired(month),
            }
        )
    return out


@dataclass(frozen=True)
class Redemption:
    """A checked token (its spent id), its key and the creator it goes to."""

    spent: str
    key: TokenKey
    creator: str

    def answer(self) -> dict[str, Any]:
        return {
            "month": self.key.month,
            "cents": self.key.denomination_cents,
            "creator": self.creator,
        }


def to_the_hour(at: int) -> int:
    """A time the hub keeps about tokens: the hour, not the second (issue
    27, point 6), so that its database cannot be joined to the second with
    the times of signed requests."""
    return at - at % 3600


def _make_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=tokens.KEY_BITS)
