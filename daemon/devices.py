"""One wallet on several computers (DESIGN.md, "Devices"; mecene/devicewire.py).

A computer becomes one of the account's devices when it first invites
another (`invite`: its own key is added at the hub, signed with the
account's key) or when it joins with a code (`join`, before any daemon runs
on it). From then on it signs its requests with its own key, and the hub
refuses them once another computer removed it.

What a computer that joins with a code needs travels sealed under the
one-time code: the account, the records' two keys and the backups' key
(`shared_secrets`), the hub and the settings — never the wallet's seed. It
acts with its own device key (and signs its settlements with it: the hub
takes them while the device is the account's). Flattrs, Undos,
subscriptions, gifts and settings then travel in the wallet's encrypted
records (daemon/records/), which each computer writes and reads within
SYNC_SECONDS once the account has devices. Names and the day each computer
was last seen travel there too: the hub knows device keys and the day each
was added or removed, nothing else.

What removing does, and does not: the hub refuses the removed key at once,
on every route, for good, and the removed computer's daemon stops sending.
A computer that joined with a code holds nothing else the hub takes: it can
no longer act for the account. It still holds the records' key, so a hub
that kept giving it ciphertext (it is refused) could let it read what the
others write: the records' key is not changed on removal. A computer that
joined with the recovery phrase holds the seed, which is the account: the
phrase can always add a device again (said where a device is removed).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mecene import devicewire, signing
from mecene.encoding import b64u, unb64u

from .backup import archive_key
from .errors import Invalid, NotFound
from .records import seal
from .wallet import WalletData

if TYPE_CHECKING:
    from .hublink import HubLink

log = logging.getLogger("mecene.devices")

# Meta: what this computer knows of the account's devices, from the records:
# {device key: {"name": …, "seen": YYYY-MM-DD}}.
KNOWN = "devices_known"
NAME_MAX = 60


def default_name() -> str:
    return socket.gethostname()[:NAME_MAX] or "this computer"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise Invalid(f"a device's name is 1 to {NAME_MAX} characters")
    if any(not c.isprintable() for c in name):
        raise Invalid("a device's name is printable text")
    return name.strip()


def public_of(key: Ed25519PrivateKey) -> str:
    return b64u(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def merge_known(mine: dict[str, Any], theirs: Any) -> dict[str, Any]:
    """Each device's entry with the later `seen` (the same day: the greater
    name, so every computer keeps the same)."""
    out = dict(mine)
    if not isinstance(theirs, dict):
        return out
    for key, entry in theirs.items():
        if not isinstance(key, str) or not isinstance(entry, dict):
            continue
        name, seen = entry.get("name"), entry.get("seen")
        if not isinstance(name, str) or not isinstance(seen, str):
            continue
        kept = out.get(key)
        if kept is None or (seen, name) > (kept.get("seen", ""), kept.get("name", "")):
            out[key] = {"name": name[:NAME_MAX], "seen": seen[:10]}
    return out


class DeviceLink:
    def __init__(self, link: HubLink) -> None:
        self.link = link
        self.service = link.service

    async def known(self) -> dict[str, Any]:
        text = await self.service.session.meta(KNOWN)
        return json.loads(text) if text else {}

    async def own_entry(self) -> dict[str, Any]:
        """This computer's entry for the records (none if it is no device)."""
        wallet = self.service.session.require_wallet()
        if wallet.data.device is None:
            return {}
        day = self.service.clock.now().astimezone(dt.UTC).strftime("%Y-%m-%d")
        return {wallet.data.device: {"name": wallet.data.device_name, "seen": day}}

    async def take_known(self, theirs: Any) -> None:
        merged = merge_known(await self.known(), theirs)
        await self.service.session.set_meta(KNOWN, json.dumps(merged, sort_keys=True))

    def several(self) -> bool:
        """Whether this computer is one of the account's devices: it invited
        another or joined one (records then go within SYNC_SECONDS, both ways)."""
        return self.service.session.require_wallet().data.device is not None

    async def ensure_own(self, name: str) -> str:
        """This computer's device key, added at the hub first if it has none."""
        wallet = self.service.session.require_wallet()
        if wallet.data.device is not None:
            return wallet.data.device
        if self.service.session.practice_hub:
            raise Invalid(
                "the wallet's computers share it through a hub they all reach: this daemon "
                "runs the practice hub on this computer (start it with --hub URL)"
            )
        key = Ed25519PrivateKey.generate()
        device = public_of(key)
        proof = b64u(key.sign(devicewire.device_message(wallet.account, device)))
        body = {"device": device, "proof": proof}
        await self.link.ok("POST", "/v1/devices", body, as_account=True)
        wallet.become_device(key, name)
        await self.take_known(await self.own_entry())
        self.link.wake.set()  # records go within SYNC_SECONDS from now on
        return device

    async def invite(self, name: str | None) -> dict[str, Any]:
        """A one-time code another computer joins with (within 15 minutes)."""
        await self.ensure_own(check_name(name) if name else default_name())
        wallet = self.service.session.require_wallet()
        code = devicewire.new_code()
        settings = wallet.settings.to_json()
        settings.pop("backup_dir", None)
        # Never the seed: what acting for the account needs besides this
        # computer's own key (daemon/wallet.py, `shared`).
        payload = {
            "v": 2,
            "account": wallet.account,
            "shared": shared_secrets(wallet.data),
            "hub": self.link.base_url,
            "settings": settings,
        }
        sealed = devicewire.seal_invite(code, payload)
        out = await self.link.ok(
            "PUT", f"/v1/invites/{devicewire.invite_id(code)}", {"data": b64u(sealed)}
        )
        log.info("a device invitation was made (valid 15 minutes)")
        return {"code": code, "expires_at": out["expires_at"]}

    async def listed(self) -> dict[str, Any]:
        wallet = self.service.session.require_wallet()
        this = wallet.data.device
        if this is None:
            return {"this": None, "devices": []}
        at_hub = (await self.link.ok("GET", "/v1/devices"))["devices"]
        known = await self.known()
        out = []
        for row in at_hub:
            entry = known.get(row["device"], {})
            out.append(
                {
                    "device": row["device"],
                    "name": entry.get("name") or "(not seen yet)",
                    "added": row["added"],
                    "removed": row["removed"],
                    "last_seen": entry.get("seen"),
                    "this": row["device"] == this,
                }
            )
        return {"this": this, "devices": out}

    async def remove(self, ref: str) -> dict[str, Any]:
        """Remove a device by its name or key (not this computer's own)."""
        listed = (await self.listed())["devices"]
        found = [d for d in listed if ref in (d["device"], d["name"]) and not d["removed"]]
        if not found:
            raise NotFound(f"no device named {ref!r} on this wallet")
        if len(found) > 1:
            raise Invalid(f"several devices are named {ref!r}: give its key")
        device = found[0]
        if device["this"]:
            raise Invalid("this computer cannot remove itself: remove it from another one")
        return dict(await self.link.ok("DELETE", f"/v1/devices/{device['device']}"))


# -- joining, before a daemon runs on the new computer ---------------------------------


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the person's own hub URL
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message")
        except ValueError:
            message = None
        raise devicewire.DeviceError(f"the hub refused: {message or exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise devicewire.DeviceError(f"the hub at {url} is unreachable: {exc}") from None


def add_with_seed(hub_url: str, seed: bytes, key: Ed25519PrivateKey, timeout: float = 30) -> str:
    """Add the device `key` to the account of `seed` (the recovery phrase's),
    signed with the account's own key; the account."""
    account_key = Ed25519PrivateKey.from_private_bytes(seed)
    account = public_of(account_key)
    device = public_of(key)
    proof = b64u(key.sign(devicewire.device_message(account, device)))
    path = "/v1/devices"
    prefix = urllib.parse.urlsplit(hub_url).path.rstrip("/")
    raw, headers = signing.signed_request(
        account,
        lambda m: b64u(account_key.sign(m)),
        "POST",
        prefix + path,
        {"device": device, "proof": proof},
        time.time(),
    )
    _post(hub_url.rstrip("/") + path, raw, headers, timeout)
    return account


def accept(hub_url: str, code: str, key: Ed25519PrivateKey, timeout: float = 30) -> dict[str, Any]:
    """Take the invitation for `code` at `hub_url` with the new device `key`;
    the invitation's contents, checked. Raises devicewire.DeviceError."""
    ident = devicewire.invite_id(code)
    device = public_of(key)
    body = json.dumps(
        {"device": device, "proof": b64u(key.sign(devicewire.accept_message(ident, device)))}
    ).encode()
    answer = _post(f"{hub_url.rstrip('/')}/v1/invites/{ident}/accept", body, {}, timeout)
    payload = devicewire.open_invite(code, unb64u(answer["data"]))
    shared = payload.get("shared")
    if (
        not isinstance(shared, dict)
        or set(shared) != set(SHARED)
        or not all(isinstance(v, str) and len(unb64u(v)) == 32 for v in shared.values())
    ):
        raise devicewire.DeviceError("the invitation holds no wallet")
    if payload.get("account") != answer["account"]:
        raise devicewire.DeviceError("the invitation's wallet is not the account the hub named")
    return payload


SHARED = ("records_key", "records_slots", "archive")


def shared_secrets(data: WalletData) -> dict[str, str]:
    """What a computer that joins with a code holds instead of the seed: the
    records' two keys and the backups' key."""
    if not data.holds_seed:
        return dict(data.shared)
    key, slots = seal.RecordKeys.secrets(data.seed)
    return {
        "records_key": b64u(key),
        "records_slots": b64u(slots),
        "archive": b64u(archive_key(data.seed)),
    }
