"""Direct transfers: a one-off amount to one creator, outside the month's
split, admitted at once (hub/admission.py) and answered with a signed
receipt, once per client id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mecene.settlement import TransferReceipt

from . import admit, ledger
from .admission import Admission
from .core import HubCore, Room
from .errors import HubError
from .ledger import User
from .requests import TransferRequest
from .routing import Piece
from .schema import transfers


class Transfers(Room):
    def __init__(self, core: HubCore, admission: Admission) -> None:
        super().__init__(core)
        self.admission = admission
        self.key = core.key
        self.public_key = core.public_key

    async def transfer(self, account: str, req: TransferRequest) -> tuple[bool, dict[str, Any]]:
        """A one-off amount to one creator, outside the month's split: (created,
        {receipt, signature}). Its money goes as a flattr's does (fee, "to
        receive, you must give", escrow) in the hub's current month. The same
        client id again returns the same receipt; with another body, 409."""

        async def run(conn: AsyncConnection) -> tuple[bool, dict[str, Any]]:
            known = (
                await conn.execute(
                    select(transfers)
                    .where(transfers.c.account == account, transfers.c.id == req.id)
                    .with_for_update()
                )
            ).first()
            if known is not None:
                if known.sha256 != req.sha256:
                    raise HubError("id_conflict", "this transfer id was used for another transfer")
                return False, {"receipt": known.receipt, "signature": known.receipt_signature}
            return True, await self._transfer(conn, account, req)

        return await self._retrying(run)

    async def _transfer(
        self, conn: AsyncConnection, account: str, req: TransferRequest
    ) -> dict[str, Any]:
        now, month = self.now(), self.month()
        have = await ledger.balance_cents(conn, User(account))
        refused = admit.refusal(
            admit.Kind.TRANSFER, month=month, spend_cents=req.cents, balance_cents=have
        )
        if refused is not None:
            raise refused
        piece = Piece(
            giver=account,
            month=month,
            creator=req.creator,
            cents=req.cents,
            url=req.url,
            transfer_id=req.id,
        )
        routed = await self.admission.accept(conn, account, month, [piece], req.cents, now)
        # The giver counts once for the creator (and the thing): real money,
        # at least MIN_TRANSFER_CENTS, so no free account inflates a counter.
        await self.admission.count(conn, account, [piece])
        try:
            await ledger.post(conn, "transfer", f"{account}:{req.id}", routed.legs, now)
        except ledger.InsufficientFunds:
            have = await ledger.balance_cents(conn, User(account))
            raise admit.insufficient(
                admit.Kind.TRANSFER, spend_cents=req.cents, balance_cents=have
            ) from None
        receipt_text, receipt_signature = TransferReceipt(
            hub=self.public_key,
            account=account,
            transfer=req.id,
            sha256=req.sha256,
            month=month,
            creator=req.creator,
            cents=req.cents,
            credited_cents=routed.credited_cents,
            held_cents=routed.held_cents,
            received_at=now,
        ).sign(self.key.sign)
        await conn.execute(
            insert(transfers).values(
                account=account,
                id=req.id,
                month=month,
                creator=req.creator,
                cents=req.cents,
                sha256=req.sha256,
                receipt=receipt_text,
                receipt_signature=receipt_signature,
                received_at=now,
            )
        )
        return {"receipt": receipt_text, "signature": receipt_signature}
