"""Devices (mecene/devicewire.py): the keys that act for an account besides
its own, and the invitations that add one.

A request signed by a device is taken only while the device is the account's
and not removed (`check`). A device is added by the account's own key or by
one of its devices (with the new key's proof that it holds it), or by
accepting an invitation another device left; removed by the same. The hub
knows the day a device was added and removed, no name and no time of day.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mecene import devicewire
from mecene.devicewire import DeviceProof
from mecene.encoding import b64u

from .accept import Auth
from .core import Room
from .db import transaction
from .errors import HubError
from .schema import accounts, devices, invites


class Devices(Room):
    def _day(self) -> str:
        return self.clock.now().strftime("%Y-%m-%d")

    async def check(self, auth: Auth) -> None:
        """Refuse a request signed by a device that is not the account's, or
        was removed."""
        if auth.device is None:
            return
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(devices.c.account, devices.c.removed_day).where(
                        devices.c.device == auth.device
                    )
                )
            ).first()
        if row is None or row.account != auth.account:
            raise HubError("device_unknown", "this device is not one of the account's")
        if row.removed_day is not None:
            raise HubError(
                "device_removed", f"this device was removed from the account on {row.removed_day}"
            )

    async def add(self, account: str, req: DeviceProof) -> dict[str, Any]:
        try:
            devicewire.check_proof(devicewire.device_message(account, req.device), req)
        except devicewire.DeviceError as exc:
            raise HubError(exc.code, str(exc)) from None

        async def run(conn: AsyncConnection) -> dict[str, Any]:
            return await self._add(conn, account, req.device)

        return await self._retrying(run)

    async def _add(self, conn: AsyncConnection, account: str, device: str) -> dict[str, Any]:
        await conn.execute(select(accounts.c.id).where(accounts.c.id == account).with_for_update())
        row = (
            await conn.execute(
                select(devices.c.account, devices.c.added_day, devices.c.removed_day).where(
                    devices.c.device == device
                )
            )
        ).first()
        if row is not None:
            if row.account != account:
                raise HubError("device_taken", "this device key acts for another account")
            if row.removed_day is not None:
                raise HubError("device_removed", "a removed device key never comes back")
            return {"device": device, "added": row.added_day}
        count = await conn.scalar(
            select(func.count())
            .select_from(devices)
            .where(devices.c.account == account, devices.c.removed_day.is_(None))
        )
        if int(count or 0) >= devicewire.MAX_DEVICES:
            raise HubError(
                "too_many_devices",
                f"an account has at most {devicewire.MAX_DEVICES} devices: remove one first",
            )
        day = self._day()
        await conn.execute(insert(devices).values(device=device, account=account, added_day=day))
        return {"device": device, "added": day}

    async def listed(self, account: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(devices.c.device, devices.c.added_day, devices.c.removed_day)
                .where(devices.c.account == account)
                .order_by(devices.c.added_day, devices.c.device)
            )
            return {
                "devices": [
                    {"device": r.device, "added": r.added_day, "removed": r.removed_day}
                    for r in rows
                ]
            }

    async def remove(self, account: str, device: str) -> dict[str, Any]:
        day = self._day()
        async with transaction(self.engine) as conn:
            done = await conn.execute(
                update(devices)
                .where(
                    devices.c.device == device,
                    devices.c.account == account,
                    devices.c.removed_day.is_(None),
                )
                .values(removed_day=day)
            )
            if not done.rowcount:
                kept = await conn.scalar(
                    select(devices.c.removed_day).where(
                        devices.c.device == device, devices.c.account == account
                    )
                )
                if kept is None:
                    raise HubError("not_found", "no such device on this account")
                day = str(kept)
        return {"device": device, "removed": day}

    # -- invitations -------------------------------------------------------------------

    async def invite(self, account: str, ident: str, data: bytes) -> dict[str, Any]:
        """Keep a sealed invitation for INVITE_SECONDS; an account has one at a
        time (a new one replaces it)."""
        expires = int(self.clock.now().timestamp()) + devicewire.INVITE_SECONDS
        async with transaction(self.engine) as conn:
            await conn.execute(
                delete(invites).where(
                    (invites.c.account == account)
                    | (invites.c.expires_at < int(self.clock.now().timestamp()))
                )
            )
            if await conn.scalar(select(invites.c.id).where(invites.c.id == ident)):
                raise HubError("invite_taken", "this invitation id is in use")
            await conn.execute(
                insert(invites).values(
                    id=ident, account=account, data=b64u(data), expires_at=expires
                )
            )
        return {"id": ident, "expires_at": expires}

    async def accept(self, ident: str, req: DeviceProof) -> dict[str, Any]:
        """Take an invitation once: its device key becomes the account's,
        and the sealed invitation is given back and gone."""
        try:
            devicewire.check_proof(devicewire.accept_message(ident, req.device), req)
        except devicewire.DeviceError as exc:
            raise HubError(exc.code, str(exc)) from None
        now = int(self.clock.now().timestamp())

        async def run(conn: AsyncConnection) -> dict[str, Any]:
            row = (
                await conn.execute(
                    select(invites.c.account, invites.c.data, invites.c.expires_at)
                    .where(invites.c.id == ident)
                    .with_for_update()
                )
            ).first()
            if row is None or row.expires_at < now:
                raise HubError(
                    "not_found", "no such invitation (a code is used once, within 15 minutes)"
                )
            await conn.execute(delete(invites).where(invites.c.id == ident))
            await self._add(conn, row.account, req.device)
            return {"account": row.account, "data": row.data}

        return await self._retrying(run)
