"""The joined list in memory and the person's own keys."""

from __future__ import annotations

from typing import Any

from mecene.time import timestamp

from ..months.room import Months
from ..session import Session
from .policy import Joined


class Creators:
    def __init__(self, session: Session, months: Months) -> None:
        self.session = session
        self.months = months
        # The hub's published set of proved creator keys, downloaded whole by
        # the hub link (never a question about one key); None until it arrives.
        self.joined: Joined | None = None

    def creators_joined(self, keys: list[str]) -> dict[str, Any]:
        """Whether each key has joined, from the last list the hub published
        (`joined` is None while no list has arrived yet)."""
        j = self.joined
        wallet = self.session.wallet
        return {
            "creators": [{"key": k, "joined": None if j is None else k in j.keys} for k in keys],
            "escrow_months": None if j is None else j.escrow_months,
            "list_at": None if j is None else timestamp(j.at),
            # As tokens, money held for a creator waits for them for good.
            "unlinkable": wallet is not None and wallet.settings.unlinkable,
        }

    async def add_own_creator(self, key: str) -> None:
        """A key the person owns (a flattr id the hub issued them): never flattred
        by themselves (`flattr_owner`)."""
        own = self.session.settings.own_creators
        if key not in own:
            await self.months.update_settings({"own_creators": (*own, key)})
