"""Encrypted records (mecene/recordwire.py): ciphertext a daemon keeps here
for its own restore. The hub stores it and gives it back to the account
that wrote it; it cannot read it, and keeps no time with it.

Records are kept only for accounts that hold money here or own a creator key
(one deposit, or one key): an account anyone can make for free must not be
free storage.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mecene import recordwire
from mecene.encoding import b64u

from .core import Room
from .errors import HubError
from .schema import accounts, creator_keys, deposits, records


class Records(Room):
    async def put(self, account: str, slot: str, req: recordwire.RecordPut) -> dict[str, Any]:
        """Keep `req` in `slot`. The same version with the same data again is
        answered again (a retry); an older or equal version with other data
        is refused as stale, with the version kept."""
        data = b64u(req.data)

        async def run(conn: AsyncConnection) -> dict[str, Any]:
            await conn.execute(
                select(accounts.c.id).where(accounts.c.id == account).with_for_update()
            )
            if not await _keeps_records(conn, account):
                raise HubError(
                    "forbidden",
                    "records are kept for accounts with a deposit or a creator key",
                )
            where = (records.c.account == account) & (records.c.slot == slot)
            kept = (
                await conn.execute(select(records.c.version, records.c.data).where(where))
            ).first()
            if kept is None:
                count = await conn.scalar(
                    select(func.count()).select_from(records).where(records.c.account == account)
                )
                if int(count or 0) >= recordwire.MAX_SLOTS:
                    raise HubError(
                        "too_many_records",
                        f"an account keeps at most {recordwire.MAX_SLOTS} records",
                    )
                await conn.execute(
                    insert(records).values(
                        account=account, slot=slot, version=req.version, data=data
                    )
                )
            elif kept.version == req.version and kept.data == data:
                pass  # the same write again
            elif kept.version >= req.version:
                raise HubError(
                    "stale_record",
                    f"this record is already at version {kept.version}",
                    version=int(kept.version),
                )
            else:
                await conn.execute(
                    update(records).where(where).values(version=req.version, data=data)
                )
            return {"slot": slot, "version": req.version}

        return await self._retrying(run)

    async def listed(self, account: str) -> dict[str, Any]:
        """Every slot the account keeps and its version, no data: how a
        computer of the account sees, in one small answer, that another
        wrote something."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(records.c.slot, records.c.version)
                .where(records.c.account == account)
                .order_by(records.c.slot)
            )
            return {"records": [{"slot": r.slot, "version": int(r.version)} for r in rows]}

    async def get(self, account: str, slot: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            kept = (
                await conn.execute(
                    select(records.c.version, records.c.data).where(
                        (records.c.account == account) & (records.c.slot == slot)
                    )
                )
            ).first()
        if kept is None:
            raise HubError("not_found", "no record in this slot")
        return {"slot": slot, "version": int(kept.version), "data": kept.data}


async def _keeps_records(conn: AsyncConnection, account: str) -> bool:
    deposit = await conn.scalar(select(deposits.c.id).where(deposits.c.account == account).limit(1))
    if deposit is not None:
        return True
    key = await conn.scalar(
        select(creator_keys.c.key).where(creator_keys.c.owner == account).limit(1)
    )
    return key is not None
