"""Who is asking: a request's signature and freshness, its nonce spent once,
and the account opened on its first signed request."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete

from mecene import signing

from . import ledger
from .accept import Auth
from .core import Room
from .db import transaction
from .errors import HubError
from .schema import accounts, nonces


class Signatures(Room):
    def check_signature(
        self, headers: Mapping[str, str], method: str, path_qs: str, body: bytes
    ) -> Auth:
        """Who signed this request (its signature and freshness checked); its
        nonce is spent by `spend_nonce`, or with the request's own writes."""
        try:
            account, device, nonce, ts = signing.check_signed(
                headers, method, path_qs, body, self.now()
            )
        except signing.SignatureError as exc:
            raise HubError(exc.code, str(exc)) from None
        return Auth(account, nonce, ts, device)

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
