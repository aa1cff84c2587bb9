"""Sending the records to the hub and fetching them back (the only part of
records that talks to the network; through the hub link's signed calls).

When they are sent:
- the state at once when a month closed or was acknowledged, or a linkable
  gift was given or refused (the hub has just seen the settlement or the gift, or
  every daemon closes its month at that moment); when only a setting or a
  subscription changed, at most every RECORD_EVERY_SECONDS (an hour: the hub
  sees "something changed this hour", never what);
- the tokens right before an issuance is asked for (the blinded requests
  must survive the disk: sent again, they are answered again, while new ones
  would be refused) and again once they are signed;
- never in a pass that redeemed a token: a signed request beside an
  anonymous redemption would tell the hub whose token it was.

When they are fetched: at the first start after `mecene restore` (the data
directory's restore marker), and whenever the hub says a record there is
newer than ours (another copy of this wallet wrote it). What comes back is
merged (records/sql.py): nothing here is lost by it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mecene.encoding import b64u, unb64u
from mecene.settlement import Receipt
from mecene.signing import SignatureError
from mecene.time import add_months, timestamp

from ..devices import merge_known
from ..errors import DomainError, HubRefused
from ..months import sql as months_sql
from ..months.policy import UNSENT, MonthState
from ..months.room import SETTINGS_CHANGED
from ..wallet import Settings, WalletData
from . import seal, sql

if TYPE_CHECKING:
    from ..devices import DeviceLink
    from ..service import Service

log = logging.getLogger("mecene.records")

RECORD_EVERY_SECONDS = float(os.environ.get("MECENE_RECORD_EVERY_SECONDS", "3600"))
# With several computers on the wallet (daemon/devices.py): how soon a change
# goes, and how often the others' are looked for. Twice the spacing of
# redemptions at least (daemon/unlinkable/spacing.py), so that a signed
# call every SYNC_SECONDS leaves them their moments.
SYNC_SECONDS = float(os.environ.get("MECENE_SYNC_SECONDS", "300"))
META = "records"  # {name: {version, fingerprint, at}, "kept_at": …}
NAMES = ("state", "tokens")
# Tokens of this many months before the current one are still kept: a
# month's tokens are redeemed within hours of its settlement.
TOKEN_MONTHS = 2
# Settings that belong to one machine, not to the wallet.
MACHINE_SETTINGS = frozenset({"backup_dir"})


class HubCalls(Protocol):
    async def call(
        self, method: str, path: str, body: Any = None, *, signed: bool = True
    ) -> tuple[int, Any]:
        """The answer's status and body, or HubUnreachable."""

    async def hub_key(self) -> str:
        """The hub's public key, pinned."""


@dataclass
class Kept:
    version: int = 0
    fingerprint: str = ""
    urgent: str = ""  # the fingerprint of what goes at once (_record)
    at: float = 0.0  # loop-independent: Unix seconds of the last write


@dataclass
class Book:
    """What was last kept at the hub, per record (the daemon's meta)."""

    kept: dict[str, Kept] = field(default_factory=dict)
    kept_at: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Book:
        book = cls()
        if not text:
            return book
        data = json.loads(text)
        known = set(Kept.__dataclass_fields__)
        for name in NAMES:
            if isinstance(data.get(name), dict):
                book.kept[name] = Kept(**{k: v for k, v in data[name].items() if k in known})
        book.kept_at = data.get("kept_at")
        return book

    def text(self) -> str:
        data: dict[str, Any] = {n: vars(k) for n, k in self.kept.items()}
        data["kept_at"] = self.kept_at
        return json.dumps(data, sort_keys=True)

    def of(self, name: str) -> Kept:
        return self.kept.setdefault(name, Kept())


class RecordLink:
    def __init__(self, link: HubCalls, service: Service, marker: os.PathLike[str] | None) -> None:
        self.link = link
        self.service = service
        self.marker = marker
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        # Called when a fetch merged rows in: the hub link runs another pass
        # at once (tokens to redeem, months to send).
        self.on_merged: Callable[[], None] | None = None
        self.devices: DeviceLink | None = None
        self._listed: dict[str, int] = {}  # slot → version, from the hub's list

    # -- what the person sees -------------------------------------------------------

    async def view(self) -> dict[str, Any]:
        book = Book.parse(await self.service.session.meta(META))
        return {
            "kept_at": book.kept_at,
            "restoring": self._restoring(),
            "error": self.last_error,
        }

    def _restoring(self) -> bool:
        return self.marker is not None and os.path.exists(self.marker)

    # -- the schedule -----------------------------------------------------------------

    async def step(self) -> float | None:
        """Fetch after a restore, or when another computer of the wallet
        wrote; then send what is due (in the hub link's pass, which keeps
        apart from redemptions: daemon/unlinkable/spacing.py). Seconds until
        the next look, with several computers; else None."""
        if self.service.session.locked:
            return None
        several = self.devices is not None and self.devices.several()
        async with self._lock:
            try:
                if self._restoring():
                    await self.fetch()
                    assert self.marker is not None
                    os.unlink(self.marker)
                elif several:
                    await self._fetch_if_newer()
                every = SYNC_SECONDS if several else RECORD_EVERY_SECONDS
                await self._send_due(("state", "tokens"), every=every)
                self.last_error = None
            except (DomainError, seal.RecordDamaged, seal.RecordTooLarge) as exc:
                self.last_error = str(exc)
                log.warning("records not kept at the hub: %s", exc)
        return SYNC_SECONDS if several else None

    async def _fetch_if_newer(self) -> None:
        """One small call (slots and versions): fetch if another computer
        wrote a record since we last did."""
        wallet = self.service.session.require_wallet()
        keys = record_keys(wallet.data)
        status, data = await self.link.call("GET", "/v1/records")
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("records"), list):
            message = data.get("message") if isinstance(data, dict) else None
            raise HubRefused(f"the hub did not list the records ({status}: {message or data})")
        versions = {r.get("slot"): r.get("version") for r in data["records"] if isinstance(r, dict)}
        # Read by `_newest` in this fetch only: one generation fetched, not both.
        self._listed = {
            k: v for k, v in versions.items() if isinstance(k, str) and isinstance(v, int)
        }
        book = Book.parse(await self.service.session.meta(META))
        for name in NAMES:
            heads = [versions.get(keys.slot(name, g, 0)) for g in range(seal.GENERATIONS)]
            newest = max((v for v in heads if isinstance(v, int)), default=0)
            if newest > book.of(name).version:
                try:
                    await self.fetch()
                finally:
                    self._listed = {}
                return
        self._listed = {}

    async def before_issue(self) -> None:
        """The tokens record, sent before an issuance is asked for. An
        unreachable hub raises (the issuance would fail too); a refusal is
        noted and the issuance goes on."""
        if self._restoring():
            return  # merged first, at the next step
        async with self._lock:
            try:
                await self._send_due(("tokens",), force=True)
            except (HubRefused, seal.RecordTooLarge) as exc:
                # A hub that keeps no records (an older one), or a record too
                # large to keep, must not stop the money: the tokens go on,
                # kept on this disk only.
                self.last_error = str(exc)
                log.warning("tokens not kept at the hub before issuance: %s", exc)

    # -- sending ----------------------------------------------------------------------

    async def _record(self, name: str) -> tuple[dict[str, Any], str, str]:
        """The record, its fingerprint, and the fingerprint of what in it is
        sent at once (what the hub has just seen happen anyway)."""
        session = self.service.session
        store = session.store
        if name == "tokens":
            since = add_months(session.current_month(), -TOKEN_MONTHS)
            return await store.read(lambda db: sql.tokens(db, since))
        record = await store.read(sql.state)
        settings = session.settings.to_json()
        record["settings"] = {k: v for k, v in settings.items() if k not in MACHINE_SETTINGS}
        changed = json.loads(await session.meta(SETTINGS_CHANGED) or "{}")
        record["settings_changed"] = {k: v for k, v in changed.items() if k in record["settings"]}
        if self.devices is not None:
            record["devices"] = merge_known(
                await self.devices.known(), await self.devices.own_entry()
            )
        return record, _digest(record), _digest(sql.money_moves(record))

    async def _send_due(
        self,
        names: tuple[str, ...],
        *,
        force: bool = False,
        every: float = RECORD_EVERY_SECONDS,
    ) -> None:
        session = self.service.session
        book = Book.parse(await session.meta(META))
        now = session.now().timestamp()
        changed = False
        for name in names:
            kept = book.of(name)
            record, fingerprint, urgent = await self._record(name)
            if fingerprint == kept.fingerprint:
                continue
            # Only the state goes sooner between computers: the tokens
            # record's moment would tell the hub a gift's (see above).
            soon = now - kept.at < (every if name == "state" else RECORD_EVERY_SECONDS)
            if urgent == kept.urgent and soon and not force:
                continue  # a setting or a subscription: within the hour
            await self._put(name, kept, record)
            kept.fingerprint, kept.urgent, kept.at = fingerprint, urgent, now
            book.kept_at = timestamp(session.now())
            changed = True
        if changed:
            await session.set_meta(META, book.text())

    async def _put(self, name: str, kept: Kept, record: dict[str, Any]) -> None:
        wallet = self.service.session.require_wallet()
        keys = record_keys(wallet.data)
        version = kept.version + 1
        try:
            sealed_parts = keys.seal(name, version, record)
        except seal.RecordTooLarge:
            if name != "state":
                raise
            log.warning("the state record is large: settled months keep their receipts only")
            sealed_parts = keys.seal(name, version, sql.without_settled_documents(record))
        for slot, sealed in sealed_parts:
            body = {"version": version, "data": b64u(sealed)}
            status, data = await self.link.call("PUT", f"/v1/records/{slot}", body)
            if status == 409 and isinstance(data, dict) and data.get("error") == "stale_record":
                # Another copy of this wallet wrote a newer one: take in what
                # it has, and write ours above it at the next step.
                await self.fetch()
                kept.version = max(kept.version, int(data.get("version") or 0))
                raise HubRefused(f"the {name} record at the hub was newer; merged it")
            if status != 200:
                raise HubRefused(_refusal(name, status, data))
        kept.version = version

    # -- fetching ---------------------------------------------------------------------

    async def fetch(self) -> dict[str, int]:
        """Fetch both records and merge them in; what each added."""
        wallet = self.service.session.require_wallet()
        keys = record_keys(wallet.data)
        added: dict[str, int] = {}
        book = Book.parse(await self.service.session.meta(META))
        for name in NAMES:
            found = await self._newest(keys, name)
            if found is None:
                continue
            version, record = found
            kept = book.of(name)
            kept.version = max(kept.version, version)
            added[name] = await self._merge(name, record)
        await self.service.session.set_meta(META, book.text())
        log.info("records fetched from the hub and merged: %s", added or "none there")
        if any(added.values()) and self.on_merged is not None:
            self.on_merged()
        return added

    async def _newest(self, keys: seal.RecordKeys, name: str) -> tuple[int, dict[str, Any]] | None:
        """The newest whole generation of a record, or None if there is none."""
        heads = []
        listed = {g: self._listed.get(keys.slot(name, g, 0)) for g in range(seal.GENERATIONS)}
        newest = max((v for v in listed.values() if v is not None), default=None)
        for generation in range(seal.GENERATIONS):
            if newest is not None and listed[generation] != newest:
                continue  # the hub's list says the other generation is newer
            head = await self._part(keys, keys.slot(name, generation, 0))
            if head is not None:
                heads.append((head.version, generation, head))
        for _version, generation, head in sorted(heads, key=lambda h: h[0], reverse=True):
            parts = [head]
            for index in range(1, head.parts):
                part = await self._part(keys, keys.slot(name, generation, index))
                if part is None or part.version != head.version or part.index != index:
                    break
                parts.append(part)
            else:
                return head.version, seal.join(parts)
            log.warning("the %s record's newest copy at the hub is incomplete", name)
        return None

    async def _part(self, keys: seal.RecordKeys, slot: str) -> seal.Part | None:
        status, data = await self.link.call("GET", f"/v1/records/{slot}")
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("data"), str):
            raise HubRefused(_refusal("a", status, data))
        return keys.open(slot, unb64u(data["data"]))

    async def _merge(self, name: str, record: dict[str, Any]) -> int:
        service = self.service
        store = service.session.store
        if name == "tokens":
            return await store.write(lambda db: sql.merge_tokens(db, record))
        # Settings first: the time zone decides which month is open, and a
        # computer new to the wallet must not close the month it takes in.
        await self._merge_settings(record)
        adoptable = await self._adoptable(record)
        at = timestamp(service.session.now())
        merged = await store.write(
            lambda db: sql.merge_state(db, record, adoptable=adoptable, moved_at=at)
        )
        if merged.reopened is not None:
            # The open month is the wallet's, not the one this computer
            # guessed before the record came.
            service.months.forget_open()
            log.info("the open month is %s, as on the wallet's other computers", merged.reopened)
        for month in merged.adopted:
            log.warning("%s: another computer of this wallet settled it; its month is kept", month)
        if merged.moved:
            log.warning(
                "%d flattrs reached a month already settled: moved to the open month",
                len(merged.moved),
            )
        if self.devices is not None and "devices" in record:
            await self.devices.take_known(record["devices"])
        for month in sorted(merged.reclose):
            # A closed month not sent yet took in another computer's
            # flattrs: split and signed again, so it covers them.
            if await self._month_state(month) == MonthState.CLOSED:
                await service.months.close(month, again=True)
        # A subscription brought back places its click in the open month.
        await service.months.place_subscriptions()
        return merged.count

    async def _month_state(self, month: str) -> str | None:
        return await self.service.session.store.read(lambda db: months_sql.state(db, month))

    async def _merge_settings(self, record: dict[str, Any]) -> None:
        """Each setting the record has takes its value if it changed there
        later than here (or neither side knows when: a restore)."""
        settings = record.get("settings")
        if not isinstance(settings, dict):
            return
        theirs_at = record.get("settings_changed")
        theirs_at = theirs_at if isinstance(theirs_at, dict) else {}
        session = self.service.session
        mine_at = json.loads(await session.meta(SETTINGS_CHANGED) or "{}")
        mine = session.settings.to_json()
        theirs = {
            k: v
            for k, v in settings.items()
            if k not in MACHINE_SETTINGS
            and (
                str(theirs_at.get(k) or "") > str(mine_at.get(k) or "")
                or not (theirs_at.get(k) or mine_at.get(k))
            )
        }
        try:
            wanted = Settings.from_json({**mine, **theirs}).to_json()
        except (TypeError, ValueError) as exc:
            log.warning("the settings in the record were not taken: %s", exc)
            return
        changes = {k: v for k, v in wanted.items() if mine.get(k) != v}
        if "own_creators" in changes:
            changes["own_creators"] = tuple(changes["own_creators"])
        if changes:
            times = {k: str(theirs_at[k]) for k in changes if isinstance(theirs_at.get(k), str)}
            await self.service.months.update_settings(changes, changed_at=times)

    async def _adoptable(self, record: dict[str, Any]) -> frozenset[str]:
        """The record's settled months whose receipt is the hub's, for the
        document the record holds, that this computer has closed and not
        seen accepted: the hub kept that document, not ours."""
        months = [m for m in record.get("months") or [] if isinstance(m, dict)]
        candidates = [
            m
            for m in months
            if m.get("state") == MonthState.SETTLED and m.get("receipt") and m.get("document")
        ]
        if not candidates:
            return frozenset()
        account = self.service.session.require_wallet().account
        out = set()
        for month in candidates:
            if await self._month_state(str(month.get("month"))) not in UNSENT:
                continue
            try:
                key = await self.link.hub_key()
                Receipt.verify(key, month["receipt"], month["receipt_signature"])
                receipt = Receipt.parse(month["receipt"])
            except (DomainError, ValueError, KeyError, TypeError, SignatureError) as exc:
                log.warning("%s in the record has no valid receipt: %s", month.get("month"), exc)
                continue
            sha = hashlib.sha256(str(month["document"]).encode()).hexdigest()
            if (receipt.account, receipt.month, receipt.sha256) == (account, month["month"], sha):
                out.add(str(month["month"]))
        return frozenset(out)


def record_keys(data: WalletData) -> seal.RecordKeys:
    """The wallet's record keys: from its seed, or as a computer that joined
    with a code holds them."""
    key, slots = data.secret("records_key"), data.secret("records_slots")
    if key is None or slots is None:
        return seal.RecordKeys(data.seed, data.account)
    return seal.RecordKeys.of(key, slots, data.account)


def _refusal(name: str, status: int, data: Any) -> str:
    message = data.get("message") if isinstance(data, dict) else None
    return f"the hub did not keep the {name} record ({status}: {message or data})"


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
