"""The session every lifecycle stands on: the wallet, the clock, the store and
the balance the hub last reported (DESIGN.md, "Rooms by lifecycle").

Nothing here knows about months, flattrs or gifts; the rooms above it
(daemon/months, daemon/flattrs, daemon/gifts, daemon/unlinkable,
daemon/browsers, daemon/creators) each take a `Session` and nothing wider.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

from mecene.time import Clock, month_of

from . import store as sql
from .errors import Invalid, Locked, WrongPassphrase
from .store import Store
from .wallet import Settings, Wallet, WalletError
from .wallet import WrongPassphrase as WalletWrongPassphrase

log = logging.getLogger("mecene")


class Session:
    def __init__(
        self, store: Store, clock: Clock, wallet_path: Path, wallet: Wallet | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.wallet_path = wallet_path
        self.wallet = wallet
        self._balance_cents: int | None = None
        # The embedded hub: simulated money on this computer, named so
        # wherever a balance is shown (DESIGN.md: a practice hub).
        self.practice_hub = False

    async def load(self) -> None:
        """Read what is kept in memory: the balance."""
        balance = await self.store.read(lambda db: sql.meta_get(db, "balance_cents"))
        self._balance_cents = None if balance is None else int(balance)

    def now(self) -> dt.datetime:
        return self.clock.now()

    # -- the wallet ------------------------------------------------------------------

    def require_wallet(self) -> Wallet:
        if self.wallet is None:
            raise Locked("the wallet is locked: unlock it with `mecene unlock` or the dashboard")
        return self.wallet

    @property
    def locked(self) -> bool:
        return self.wallet is None

    @property
    def settings(self) -> Settings:
        return self.require_wallet().settings

    async def open(self, passphrase: str) -> bool:
        """Open the wallet with `passphrase`; False if it was open already."""
        if self.wallet is not None:
            return False
        try:
            self.wallet = await asyncio.to_thread(Wallet.open, self.wallet_path, passphrase)
        except WalletWrongPassphrase:
            raise WrongPassphrase("wrong passphrase") from None
        except WalletError as exc:
            raise Invalid(str(exc)) from None
        log.info("wallet unlocked")
        return True

    def close(self) -> None:
        self.wallet = None
        log.info("wallet locked")

    async def change_passphrase(self, passphrase: str, new: str) -> None:
        """A new passphrase for the wallet, checked against the current one
        (read from the file: the unlocked wallet has only its key). The
        daemon writes it, so that no later save of its own, with the old
        key, undoes the change."""
        if self.wallet is None:
            raise Locked("the wallet is locked: unlock it first")
        try:
            await asyncio.to_thread(Wallet.open, self.wallet_path, passphrase)
        except WalletWrongPassphrase:
            raise WrongPassphrase("wrong passphrase") from None
        except WalletError as exc:
            raise Invalid(str(exc)) from None
        try:
            await asyncio.to_thread(self.wallet.change_passphrase, new)
        except WalletError as exc:
            raise Invalid(str(exc)) from None
        log.info("wallet passphrase changed")

    def current_month(self) -> str:
        return month_of(self.clock.now(), self.settings.time_zone)

    # -- the balance and the session's few values -------------------------------------

    @property
    def balance_cents(self) -> int | None:
        """The balance the hub last reported; None until a hub has told us.

        Read from the database at start and kept in memory: this daemon is its
        only writer, and every status answer needs it.
        """
        return self._balance_cents

    async def meta(self, key: str) -> str | None:
        return await self.store.read(lambda db: sql.meta_get(db, key))

    async def set_meta(self, key: str, value: str) -> None:
        await self.store.write(lambda db: sql.meta_set(db, key, value))

    async def set_balance(self, cents: int) -> None:
        """The balance the hub reports (hub link); kept for the status and the split."""
        await self.set_meta("balance_cents", str(cents))
        self._balance_cents = cents
