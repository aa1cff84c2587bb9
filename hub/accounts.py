"""The ledger's accounts as typed values (pure: hub/ledger.py stores them).

A ledger account's name in the database says whose money it is:

    user:ACCOUNT             User          a person's balance, spent by their settlements
    creator:ACCOUNT          Creator       what a creator has received, withdrawable
    withheld:ACCOUNT:MONTH   Withheld      received in a month the creator gave nothing in
    escrow:KEY               Escrow        given to a creator key nobody has proved yet
    unrouted:MONTH:NN        Unrouted      accepted settlements' money, until a payout run
                                           routes it (32 shards, one pool)
    tokens:MONTH             Tokens        unlinkable months' money, issued as blind-signed
                                           tokens and not redeemed yet (hub/tokens.py)
    fees:NN                  Fees          the hub's 10 %, in 16 shards chosen by the giver
    provider:METHOD          Provider      the outside world paying in (may go negative)
    provider-fees:METHOD     ProviderFees  what the payment provider kept
    payouts                  Payouts       paid out to creators' banks

Each kind declares its overdraft rule (`may_go_negative`): only `Provider`,
the outside world, may go below zero.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class LedgerAccount:
    """One ledger account; subclasses declare their kind and overdraft rule."""

    prefix: ClassVar[str]
    may_go_negative: ClassVar[bool] = False

    @property
    def name(self) -> str:
        parts = [str(v) for v in vars(self).values()]
        return ":".join([self.prefix, *parts])

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class User(LedgerAccount):
    account: str
    prefix = "user"


@dataclass(frozen=True)
class Creator(LedgerAccount):
    account: str
    prefix = "creator"


@dataclass(frozen=True)
class Withheld(LedgerAccount):
    account: str
    month: str
    prefix = "withheld"


@dataclass(frozen=True)
class Escrow(LedgerAccount):
    key: str
    prefix = "escrow"


@dataclass(frozen=True)
class Unrouted(LedgerAccount):
    month: str
    shard: str
    prefix = "unrouted"


@dataclass(frozen=True)
class Tokens(LedgerAccount):
    month: str
    prefix = "tokens"


FEE_SHARDS = 16


@dataclass(frozen=True)
class Fees(LedgerAccount):
    shard: str
    prefix = "fees"

    @classmethod
    def of(cls, giver: str) -> Fees:
        """The shard a giver's fees go to, so that concurrent settlements do
        not all queue on one balance row."""
        n = int(hashlib.sha256(giver.encode()).hexdigest()[:8], 16) % FEE_SHARDS
        return cls(f"{n:02d}")


@dataclass(frozen=True)
class Provider(LedgerAccount):
    method: str
    prefix = "provider"
    may_go_negative = True


@dataclass(frozen=True)
class ProviderFees(LedgerAccount):
    method: str
    prefix = "provider-fees"


@dataclass(frozen=True)
class Payouts(LedgerAccount):
    prefix = "payouts"


KINDS: dict[str, type[LedgerAccount]] = {
    k.prefix: k
    for k in (
        User,
        Creator,
        Withheld,
        Escrow,
        Unrouted,
        Tokens,
        Fees,
        Provider,
        ProviderFees,
        Payouts,
    )
}


def parse_account(name: str) -> LedgerAccount:
    """The typed account of a stored name (ValueError if it is none)."""
    prefix, _, rest = name.partition(":")
    kind = KINDS.get(prefix)
    if kind is None:
        raise ValueError(f"no ledger account kind {prefix!r}")
    if kind is Payouts:
        if rest:
            raise ValueError("payouts has no parts")
        return Payouts()
    if kind is Withheld:
        account, _, month = rest.rpartition(":")
        return Withheld(account, month)
    if kind is Unrouted:
        month, _, shard = rest.partition(":")
        return Unrouted(month, shard)
    if not rest:
        raise ValueError(f"{prefix} needs a part")
    return kind(rest)  # type: ignore[call-arg]
