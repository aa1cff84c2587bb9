"""What every room of the hub stands on: the database engine, the hub's key,
the clock, the payment provider, the proof fetcher and the configuration
(the hub's counterpart of the daemon's daemon/session.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mecene.encoding import b64u
from mecene.time import Clock

from . import ledger, payout
from .db import transaction
from .proofs import ProofFetcher
from .provider import PaymentProvider
from .routing import Piece

T = TypeVar("T")


@dataclass(frozen=True)
class HubConfig:
    escrow_months: int = 12
    must_give: bool = True  # "to receive, you must give" (DESIGN.md)
    name: str = "Mécène hub"


def utc_month(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m")


def lost_a_race(exc: DBAPIError) -> bool:
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


async def pieces(conn: AsyncConnection, *where: Any) -> list[Piece]:
    """Stored allocation rows, oldest first, as pieces to release."""
    return [payout.piece_of(r) for r in await conn.execute(payout.select_pieces().where(*where))]


class HubCore:
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
        # Set when settlements were accepted or tokens redeemed: the runner's
        # payout task wakes.
        self.payouts_wanted = asyncio.Event()

    def now(self) -> int:
        return int(self.clock.now().timestamp())

    def month(self) -> str:
        return utc_month(self.clock.now())

    async def retrying(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `fn` in a transaction; again if PostgreSQL aborted it for a
        concurrent one (a unique row inserted meanwhile, a deadlock), or if a
        concurrent request committed the same ledger entry first (the same
        transfer id sent twice at once: the next try finds its row and answers
        as a replay)."""
        for attempt in range(5):
            try:
                async with transaction(self.engine) as conn:
                    return await fn(conn)
            except DBAPIError as exc:
                if not lost_a_race(exc) or attempt == 4:
                    raise
            except ledger.DuplicateEntry:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")


class Room:
    """A room of the hub: one lifecycle's statements and driver, over the core."""

    def __init__(self, core: HubCore) -> None:
        self.core = core
        self.engine = core.engine
        self.config = core.config
        self.clock = core.clock

    def now(self) -> int:
        return self.core.now()

    def month(self) -> str:
        return self.core.month()

    async def _retrying(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        return await self.core.retrying(fn)
