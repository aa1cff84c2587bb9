"""A person's account at the hub: its view (balances, what it received,
what is withheld or in escrow), deposits in and a creator's withdrawals out,
each once per client id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mecene import money
from mecene.amounts import euros

from . import ledger, routing
from .core import HubCore, Room, pieces
from .errors import HubError
from .ledger import Creator, Escrow, Payouts, Provider, ProviderFees, User, Withheld
from .requests import DepositRequest, Quote, WithdrawalRequest
from .schema import accounts, allocations, claims, creator_keys, deposits, withdrawals


class Deposits(Room):
    def __init__(self, core: HubCore) -> None:
        super().__init__(core)
        self.provider = core.provider

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
                    # What proving the key will credit: the fee is taken
                    # then, rounded per unit as the release rounds it.
                    found = await pieces(
                        conn, allocations.c.creator == key, allocations.c.state == "escrow"
                    )
                    fee = sum(
                        money.creator_fee_cents(
                            sum(p.cents for p in unit), nonprofit=bool(nonprofit)
                        )
                        for unit in routing.fee_units(found).values()
                    )
                    escrow[key] = (held, fee)
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
            # `cents` as given; `net_cents` what the key's owner receives.
            "escrow": [
                {"key": k, "cents": c, "fee_cents": f, "net_cents": c - f}
                for k, (c, f) in escrow.items()
            ],
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
