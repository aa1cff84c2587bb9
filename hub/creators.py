"""Creators and claims: a key claimed, proved (hub/proofs.py) and owned,
its escrow released to its owner or returned to the givers after the escrow
period; `flattr:` ids issued; the published list of who has joined."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mecene import messages
from mecene.encoding import b64u

from . import ledger, payout, routing
from .admission import Admission
from .claims import (
    ClaimState,
    Ownership,
    escrow_returned_up_to,
    flattr_meta,
    may_own,
    new_flattr_id,
)
from .core import HubCore, Room, pieces
from .db import transaction
from .errors import HubError
from .ledger import Escrow, LedgerAccount, User
from .proofs import ProofError, where_to_prove
from .routing import NO_GIVER
from .schema import accounts, allocations, claims, creator_keys

# How long a hub process answers the joined list from what it last read. A
# key proved through another process shows within this; through this one, at once.
JOINED_CACHE_SECONDS = 10.0


class Creators(Room):
    def __init__(self, core: HubCore, admission: Admission) -> None:
        super().__init__(core)
        self.admission = admission
        self.fetcher = core.fetcher
        # The joined list as last read, with when (the event loop's clock):
        # every daemon asks for it every few minutes, and most are told it
        # has not changed (304) without a query.
        self._joined: tuple[float, str, dict[str, Any]] | None = None

    async def claim(self, account: str, key: str) -> dict[str, Any]:
        """Start proving `key` (checked by hub.requests.claim)."""
        # Hex ids: a base64url one may start with "-", which `mecene creator
        # verify ID` would take for an option.
        claim = {
            "id": secrets.token_hex(12),
            "account": account,
            "key": key,
            "token": "mecene-claim-" + b64u(secrets.token_bytes(18)),
            "state": ClaimState.PENDING.value,
            "created_at": self.now(),
        }
        async with transaction(self.engine) as conn:
            owner = await conn.scalar(select(creator_keys.c.owner).where(creator_keys.c.key == key))
            may_own(owner, account, key)
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
        if row.state == ClaimState.VERIFIED:
            return {
                "claim": self._claim_view(row._asdict()),
                "released_cents": 0,
                "also_proved": [],
            }
        try:
            proof, tied = await self.fetcher.prove_and_tie(row.key, row.token)
        except ProofError as exc:
            raise HubError("not_proven", f"{row.key} is not proved yet: {exc}") from None

        async def own(conn: AsyncConnection) -> tuple[int, list[str]]:
            released = await self._own_key(
                conn, account, row.key, Ownership.PROOF.value, claim_id, proof
            )
            # What the same page proves is the same creator's (a YouTube
            # handle's channel id), unless another account owns it already.
            owners = await payout.lock_keys(conn, tied, exclusive=True)
            also = [key for key in tied if owners[key] is None]
            for key in also:
                released += await self._own_key(
                    conn, account, key, Ownership.PROOF.value, None, proof
                )
            return released, also

        released, also = await self._retrying(own)
        view = self._claim_view(
            {**row._asdict(), "state": ClaimState.VERIFIED.value, "proof": proof}
        )
        return {"claim": view, "released_cents": released, "also_proved": also}

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
                .where(
                    creator_keys.c.owner == account, creator_keys.c.method == Ownership.ISSUED.value
                )
                .order_by(creator_keys.c.verified_at, creator_keys.c.key)
                .limit(1)
            )
            new = issued is None
            key = new_flattr_id() if new else str(issued)
            if new:
                await self._own_key(conn, account, key, Ownership.ISSUED.value, None, None)
            return {"key": key, "meta": flattr_meta(key), "new": new}

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
        may_own(owners[key], account, key)
        self._joined = None  # this process's next list has it at once
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
                .values(state=ClaimState.VERIFIED.value, verified_at=now, proof=proof)
            )
        found = await pieces(conn, allocations.c.creator == key, allocations.c.state == "escrow")
        if not found:
            return 0
        # Released now: it counts as received this month, so "to receive, you
        # must give" looks at this month's giving (withheld until it happens,
        # under the month of release, whatever month it was given in).
        month = self.month()
        gave = (await self.admission.lock_giving(conn, [account], month))[account]
        released = routing.release(
            found,
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
        limit = escrow_returned_up_to(self.month(), self.config.escrow_months)
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

    async def set_nonprofit(self, account: str, nonprofit: bool) -> None:
        self._joined = None
        async with transaction(self.engine) as conn:
            await conn.execute(
                ledger.insert_ignore(conn, accounts).values(id=account, created_at=self.now())
            )
            await conn.execute(
                update(accounts).where(accounts.c.id == account).values(nonprofit=nonprofit)
            )

    async def joined(self) -> tuple[str, dict[str, Any]]:
        """(ETag, body) of the list of every proved creator key, sorted, and
        those of non-profits (no fee): published whole, so that a daemon
        never asks about one key (which would tell the hub what its person
        reads). The ETag is the body's digest, the same for everyone. Read
        again at most every JOINED_CACHE_SECONDS in each process, and at once
        after this process proved a key or changed a non-profit."""
        now = asyncio.get_running_loop().time()
        if self._joined is not None and now - self._joined[0] < JOINED_CACHE_SECONDS:
            return self._joined[1], self._joined[2]
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(creator_keys.c.key, accounts.c.nonprofit)
                .join(accounts, accounts.c.id == creator_keys.c.owner)
                .order_by(creator_keys.c.key)
            )
            found = [(str(key), bool(nonprofit)) for key, nonprofit in rows]
        keys = tuple(k for k, _ in found)
        nonprofits = tuple(k for k, nonprofit in found if nonprofit)
        body = messages.build_joined(
            messages.JoinedList(keys, nonprofits, self.config.escrow_months)
        )
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
        self._joined = (now, f'"joined-{digest}"', body)
        return self._joined[1], body
