"""The daemon's rooms, built once and named in one place (the composition
root, as the Web Monetization extension's container names every service).

Each room is one lifecycle of the person's money (DESIGN.md, "Rooms by
lifecycle"; docs/ARCHITECTURE.md lists them): the month, flattrs and
subscriptions, gifts, unlinkable tokens, browsers and pairing, creators. All
stand on one `Session` (wallet, clock, store, balance). Nothing here knows
about HTTP: handlers in daemon/server.py parse a request with
daemon/validate.py, call one room's method and turn a `DomainError` into a
status code.
"""

from __future__ import annotations

from pathlib import Path

from mecene.time import Clock

from .autobackup import AutoBackups
from .browsers.room import Browsers, Principal
from .creators.policy import Joined
from .creators.room import Creators
from .flattrs.room import Flattrs
from .gifts.room import Gifts
from .months.room import Months
from .session import Session
from .store import Store
from .wallet import Wallet

__all__ = ["Joined", "Principal", "Service"]


class Service:
    def __init__(
        self, store: Store, clock: Clock, wallet_path: Path, wallet: Wallet | None = None
    ) -> None:
        self.session = Session(store, clock, wallet_path, wallet)
        self.months = Months(self.session)
        self.creators = Creators(self.session, self.months)
        self.months.joined_keys = lambda: (
            None if self.creators.joined is None else (self.creators.joined.keys)
        )
        self.flattrs = Flattrs(self.session, self.months)
        self.gifts = Gifts(self.session, self.months, self.creators)
        self.browsers = Browsers(self.session)
        self.backups = AutoBackups(self.session)

    @property
    def store(self) -> Store:
        return self.session.store

    @property
    def clock(self) -> Clock:
        return self.session.clock

    async def start(self) -> None:
        """Load the paired browsers and the balance, and close any month that
        ended while we were away."""
        await self.browsers.load()
        await self.session.load()
        await self.backups.load()
        if not self.session.locked:
            await self.months.roll()

    async def unlock(self, passphrase: str) -> None:
        if not await self.session.open(passphrase):
            return
        await self.months.roll()
        if self.months.on_months_closed is not None:
            self.months.on_months_closed()

    def lock(self) -> None:
        self.session.close()
        self.months.forget_open()
