"""The encrypted wallet: the signing key, the hub account and the settings.

File layout (binary, so that every byte is covered by authentication —
a text encoding such as base64 has slack bits a tamperer could flip unseen),
format 2:

    offset  size  field
    0       8     magic  b"MECENEW\x00"
    8       1     format version (2)
    9       1     KDF id (1 = Argon2id)
    10      4     memory cost, KiB (big-endian)
    14      4     iterations
    18      4     lanes
    22      16    salt
    38      16    key check: HMAC-SHA256(key, "mecene wallet key check")[:16]
    54      12    AES-GCM nonce
    66      …     AES-256-GCM ciphertext of the JSON body, with its 16-byte tag

The 66-byte header is the associated data, so a changed parameter, salt or
nonce fails authentication like a changed ciphertext. The KDF parameters
read back are capped before any derivation, so a crafted file cannot make
unlocking take minutes or exhaust memory. The key check tells a wrong
passphrase (the check differs) from a damaged file (the check matches, the
ciphertext does not authenticate): it says nothing an attacker could not
learn by trying to decrypt. Format 1 (before 0.10) had no key check; it is
read, and written back as format 2 at once, so that an older version, which
knows only format 1, refuses the file rather than drop what it does not know.

The body names the features a reader must understand (`needs`): a reader
refuses a wallet that needs one it does not know, in one line.

The signing key's 32 bytes are the wallet's seed: the recovery phrase is
their BIP-39 encoding (24 words), and a wallet restored from it is the same
account.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import secrets
import struct
import threading
from dataclasses import asdict, dataclass, field, replace
from hmac import compare_digest as hmac_compare
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from mecene import keys, money
from mecene.encoding import b64u, unb64u
from mecene.time import zone

from . import budget
from .files import write_atomic

MAGIC = b"MECENEW\x00"
VERSION = 2
KDF_ARGON2ID = 1
HEADER = struct.Struct(">8sBBIII16s16s12s")
assert HEADER.size == 66
HEADER_V1 = struct.Struct(">8sBBIII16s12s")  # format 1: no key check
CHECK_LABEL = b"mecene wallet key check"
# What this version writes and understands in a wallet's body. A future
# feature a reader must not drop (as an older reader once dropped
# `unlinkable`) is added here, and older readers refuse the file.
FEATURES = frozenset({"settings.unlinkable", "settings.browser_gift_limit", "settings.backups"})
# Needed only by a wallet that has it: one of an account's devices (its own
# key and name); a reader that would drop them refuses the file.
DEVICE = "device"
KNOWN_FEATURES = FEATURES | {DEVICE}

# RFC 9106's second recommended option: 64 MiB, 3 passes, 4 lanes (~0.2 s here).
DEFAULT_MEMORY_KIB = 64 * 1024
DEFAULT_ITERATIONS = 3
DEFAULT_LANES = 4
# Anything above these is refused before deriving (about 2 s on a slow laptop).
MAX_MEMORY_KIB = 256 * 1024
MAX_ITERATIONS = 8
MAX_LANES = 8
MAX_FILE_BYTES = 1024 * 1024
MIN_PASSPHRASE_LENGTH = 8


class WalletError(Exception):
    """A wallet cannot be opened or written; the message is one line for a person."""


class WrongPassphrase(WalletError):
    def __init__(self) -> None:
        super().__init__("wrong passphrase")


class WalletDamaged(WalletError):
    """The file is not whole: truncated, or changed after it was written."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"the wallet {path} is damaged ({detail}); nothing was changed. Restore it from a "
            "backup (`mecene restore --from FILE`) or from the recovery phrase (`mecene restore`)"
        )


class WalletTooNew(WalletError):
    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"the wallet {path} was written by a newer version of Mécène ({what}); this version "
            "would misread it: run the newer version"
        )


def key_check(key: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(CHECK_LABEL)
    return mac.finalize()[:16]


@dataclass(frozen=True)
class KdfParams:
    memory_kib: int = DEFAULT_MEMORY_KIB
    iterations: int = DEFAULT_ITERATIONS
    lanes: int = DEFAULT_LANES

    def check(self) -> None:
        if not 1 <= self.lanes <= MAX_LANES:
            raise WalletError(f"wallet key derivation: lanes {self.lanes} outside 1–{MAX_LANES}")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise WalletError(
                f"wallet key derivation: {self.iterations} passes outside 1–{MAX_ITERATIONS}"
            )
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise WalletError(
                f"wallet key derivation: memory {self.memory_kib} KiB outside "
                f"{8 * self.lanes}–{MAX_MEMORY_KIB} KiB"
            )

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        self.check()
        kdf = Argon2id(
            salt=salt,
            length=32,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
        )
        return kdf.derive(passphrase.encode("utf-8"))


# Cheap parameters for tests only: the file format and checks are the same.
TEST_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)


@dataclass(frozen=True)
class Settings:
    """What the person chose. Money in cents; `None` means "not set"."""

    budget_cents: int = 500
    min_click_cents: int | None = None
    cap_cents: int | None = None
    charity: str | None = None
    private: bool = False
    time_zone: str = "UTC"
    own_creators: tuple[str, ...] = ()
    subscriptions_paused: bool = False  # no automatic clicks while set (tray, dashboard)
    # The month's spend goes as blind-signed tokens, redeemed to each creator
    # without the account: the hub cannot tell whom the person paid.
    unlinkable: bool = False
    # Gifts asked for by a paired browser, per day (the person's time zone):
    # beyond, each waits for the person's confirmation (dashboard, tray).
    browser_gift_limit_cents: int = 2000
    # Automatic backups (daemon/autobackup.py): a folder, daily, the last
    # `backup_keep` kept; None: none.
    backup_dir: str | None = None
    backup_keep: int = 7

    def check(self) -> None:
        """Raise ValueError unless every setting is allowed."""
        self.rules  # noqa: B018 - building the rules validates them
        if self.charity is not None:
            keys.creator_key(self.charity)
        if not isinstance(self.private, bool):
            raise ValueError("private must be true or false")
        if not isinstance(self.subscriptions_paused, bool):
            raise ValueError("subscriptions_paused must be true or false")
        if not isinstance(self.unlinkable, bool):
            raise ValueError("unlinkable must be true or false")
        limit = self.browser_gift_limit_cents
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 0 <= limit <= money.MAX_SETTING_CENTS
        ):
            raise ValueError("browser_gift_limit_cents is a whole number of cents")
        zone(self.time_zone)
        for key in self.own_creators:
            keys.creator_key(key)
        if self.backup_dir is not None and (
            not isinstance(self.backup_dir, str)
            or not os.path.isabs(self.backup_dir)
            or len(self.backup_dir) > 1024
            or "\x00" in self.backup_dir
        ):
            raise ValueError("backup_dir is a folder's full path, or null for no backups")
        keep = self.backup_keep
        if not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= 365:
            raise ValueError("backup_keep is a whole number of backups, 1 to 365")

    @functools.cached_property
    def rules(self) -> budget.BudgetRules:
        """The budget rules these settings make (built once: settings are immutable)."""
        return budget.BudgetRules(
            budget_cents=self.budget_cents,
            min_click_cents=self.min_click_cents,
            cap_cents=self.cap_cents,
            charity=self.charity,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["own_creators"] = list(self.own_creators)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if "own_creators" in values:
            values["own_creators"] = tuple(values["own_creators"])
        settings = cls(**values)
        settings.check()
        return settings

    @classmethod
    def defaults(cls) -> Settings:
        """A new wallet's: unlinkable contributions on. A wallet written
        before the setting existed reads as off (`unlinkable`'s own default):
        what a person had keeps working as it did."""
        return cls(time_zone=system_time_zone(), unlinkable=True)


@dataclass
class WalletData:
    # The account's own key (the recovery phrase's seed); None on a computer
    # that joined with a one-time code (daemon/devices.py): it acts with its
    # device key and holds only the secrets the records and backups need.
    signing_key: Ed25519PrivateKey | None
    settings: Settings
    created_at: str
    hub: dict[str, Any] = field(default_factory=dict)
    # This computer's own key and name, once it is one of the account's
    # devices (daemon/devices.py): its requests to the hub are signed with it.
    device_key: Ed25519PrivateKey | None = None
    device_name: str = ""
    account_id: str = ""  # the account, when there is no signing key
    # Without the seed: {"records_key", "records_slots", "archive"}, base64url.
    shared: dict[str, str] = field(default_factory=dict)

    @property
    def device(self) -> str | None:
        """This computer's device key (public, base64url), if it is a device."""
        if self.device_key is None:
            return None
        return b64u(self.device_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign_as_device(self, message: bytes) -> str:
        assert self.device_key is not None
        return b64u(self.device_key.sign(message))

    @property
    def account(self) -> str:
        """The public key that names this person at the hub (base64url, no padding)."""
        if self.signing_key is None:
            return self.account_id
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b64u(raw)

    def sign(self, message: bytes) -> str:
        """The account's signature; on a computer without the seed, its
        device's (the hub takes it while the device is the account's)."""
        key = self.signing_key or self.device_key
        assert key is not None
        return b64u(key.sign(message))

    @property
    def holds_seed(self) -> bool:
        return self.signing_key is not None

    @property
    def seed(self) -> bytes:
        """The 32 bytes every secret of the wallet comes from (the recovery phrase)."""
        if self.signing_key is None:
            raise WalletError(
                "this computer joined the wallet with a code and does not hold its recovery "
                "phrase: see it on a computer that does"
            )
        return self.signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def secret(self, name: str) -> bytes | None:
        """A shared secret kept without the seed (None: derive it from the seed)."""
        if self.signing_key is not None:
            return None
        return unb64u(self.shared[name])

    def body(self) -> bytes:
        doc: dict[str, Any] = {
            "v": VERSION,
            "needs": sorted(FEATURES | ({DEVICE} if self.device_key else set())),
            "created_at": self.created_at,
            "settings": self.settings.to_json(),
            "hub": self.hub,
        }
        if self.signing_key is not None:
            doc["signing_key"] = b64u(self.seed)
        else:
            doc["account"], doc["shared"] = self.account_id, self.shared
        if self.device_key is not None:
            raw = self.device_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            doc["device"] = {"key": b64u(raw), "name": self.device_name}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_body(cls, body: bytes, path: Path) -> WalletData:
        try:
            doc = json.loads(body)
            needs = doc.get("needs", [])
            if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
                raise ValueError("needs")
        except (ValueError, TypeError) as exc:
            raise WalletError(f"the wallet's contents are not valid: {exc}") from None
        unknown = sorted(set(needs) - KNOWN_FEATURES)
        if unknown:
            raise WalletTooNew(path, "it needs " + ", ".join(unknown))
        try:
            device = doc.get("device")
            device_key = None
            if device is not None:
                device_key = Ed25519PrivateKey.from_private_bytes(unb64u(device["key"]))
            signing_key = None
            if "signing_key" in doc or device_key is None:
                raw_key = unb64u(doc["signing_key"])
                if len(raw_key) != 32:
                    raise ValueError("signing key length")
                signing_key = Ed25519PrivateKey.from_private_bytes(raw_key)
            shared = doc.get("shared") or {}
            if signing_key is None and (
                not isinstance(doc.get("account"), str)
                or set(shared) != {"records_key", "records_slots", "archive"}
            ):
                raise ValueError("a wallet without its seed names its account and secrets")
            return cls(
                signing_key=signing_key,
                account_id=str(doc.get("account") or ""),
                shared={str(k): str(v) for k, v in shared.items()},
                settings=Settings.from_json(doc["settings"]),
                created_at=str(doc["created_at"]),
                hub=dict(doc.get("hub") or {}),
                device_key=device_key,
                device_name=str(device.get("name") or "") if device else "",
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WalletError(f"the wallet's contents are not valid: {exc}") from None


class Wallet:
    """An unlocked wallet: its decrypted data and the key to write it back.

    The derived key, not the passphrase, stays in memory so that settings can
    be saved without asking again; `lock()` forgets both.
    """

    def __init__(
        self, path: Path, data: WalletData, key: bytes, kdf: KdfParams, salt: bytes
    ) -> None:
        self.path = path
        self.data = data
        self._key = key
        self._kdf = kdf
        self._salt = salt
        self._header = _header(kdf, salt, key)
        # One write at a time: a save with the old key after a change of
        # passphrase (another thread) would bring the old passphrase back.
        self._writing = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self.data.settings

    @property
    def account(self) -> str:
        return self.data.account

    def sign(self, message: bytes) -> str:
        return self.data.sign(message)

    def become_device(self, key: Ed25519PrivateKey, name: str) -> None:
        """This computer is one of the account's devices from now on (its key
        added at the hub first), written back atomically."""
        self.data.device_key, self.data.device_name = key, name
        self.save()

    def update_settings(self, **changes: Any) -> Settings:
        """Change settings and write the wallet back atomically."""
        new = replace(self.data.settings, **changes)
        new.check()
        self.data.settings = new
        self.save()
        return new

    def save(self) -> None:
        """Write the wallet back (a new nonce; the same passphrase), atomically."""
        with self._writing:
            header = _header(self._kdf, self._salt, self._key)
            _write(self.path, header, self._key, self.data.body())
            self._header = header

    def change_passphrase(self, new: str, kdf: KdfParams | None = None) -> None:
        """A new passphrase (a new salt and key), written atomically: a crash at
        any moment leaves the old file or the new one, never neither."""
        _check_passphrase(new)
        kdf = kdf or self._kdf
        kdf.check()
        salt = secrets.token_bytes(16)
        key = kdf.derive(new, salt)
        with self._writing:
            header = _header(kdf, salt, key)
            _write(self.path, header, key, self.data.body())
            self._key, self._header, self._salt, self._kdf = key, header, salt, kdf

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        settings: Settings | None = None,
        kdf: KdfParams = KdfParams(),
        now: dt.datetime | None = None,
        seed: bytes | None = None,
        device: tuple[Ed25519PrivateKey, str] | None = None,
        joined: tuple[str, dict[str, str]] | None = None,
    ) -> Wallet:
        """A new wallet; from `seed` (a recovery phrase's), the same account again."""
        if path.exists():
            raise WalletError(f"a wallet already exists at {path}")
        _check_passphrase(passphrase)
        settings = settings or Settings.defaults()
        settings.check()
        kdf.check()
        salt = secrets.token_bytes(16)
        key = kdf.derive(passphrase, salt)
        created = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        signing_key = (
            Ed25519PrivateKey.generate()
            if seed is None
            else Ed25519PrivateKey.from_private_bytes(seed)
        )
        data = WalletData(signing_key, settings, created)
        if device is not None:
            data.device_key, data.device_name = device
        if joined is not None:
            # Joined with a code: the account and its shared secrets, no seed.
            if device is None:
                raise WalletError("a wallet without its seed is one of the account's devices")
            data.signing_key = None
            data.account_id, data.shared = joined
        wallet = cls(path, data, key, kdf, salt)
        _write(path, wallet._header, key, data.body())
        return wallet

    @classmethod
    def open(cls, path: Path, passphrase: str) -> Wallet:
        try:
            with path.open("rb") as f:
                blob = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise WalletError(f"no wallet at {path} (create one with `mecene init`)") from None
        except OSError as exc:
            raise WalletError(f"cannot read the wallet {path}: {exc.strerror}") from None
        if len(blob) > MAX_FILE_BYTES:
            raise WalletError("the wallet file is too large to be a wallet")
        wallet = cls.from_bytes(blob, path, passphrase)
        if blob[len(MAGIC)] != VERSION:
            wallet.save()  # format 2 from now on: older versions refuse it
        return wallet

    @classmethod
    def from_bytes(cls, blob: bytes, path: Path, passphrase: str) -> Wallet:
        """The wallet these bytes hold (a file's, a backup's), to be written at
        `path`; nothing is written."""
        if len(blob) < len(MAGIC) + 1:
            raise WalletDamaged(path, f"only {len(blob)} bytes")
        if blob[: len(MAGIC)] != MAGIC:
            raise WalletError(f"{path} is not a Mécène wallet file")
        version = blob[len(MAGIC)]
        if version > VERSION:
            raise WalletTooNew(path, f"format {version}")
        if version not in (1, VERSION):
            raise WalletError(f"unsupported wallet format version {version}")
        layout = HEADER if version == VERSION else HEADER_V1
        if len(blob) < layout.size + 16:
            raise WalletDamaged(path, f"truncated to {len(blob)} bytes")
        header = blob[: layout.size]
        if version == VERSION:
            _magic, _v, kdf_id, m, t, p, salt, check, nonce = HEADER.unpack(header)
        else:
            _magic, _v, kdf_id, m, t, p, salt, nonce = HEADER_V1.unpack(header)
            check = None
        if kdf_id != KDF_ARGON2ID:
            raise WalletError(f"unsupported key derivation id {kdf_id}")
        params = KdfParams(memory_kib=m, iterations=t, lanes=p)
        params.check()
        key = params.derive(passphrase, salt)
        if check is not None and not hmac_compare(key_check(key), check):
            raise WrongPassphrase()
        try:
            body = AESGCM(key).decrypt(nonce, blob[layout.size :], header)
        except InvalidTag:
            if check is None:  # format 1 cannot tell the two apart
                raise WalletError(
                    "wrong passphrase, or the wallet file was changed (authentication failed)"
                ) from None
            raise WalletDamaged(path, "its contents do not authenticate") from None
        return cls(path, WalletData.from_body(body, path), key, params, salt)


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise WalletError(f"the passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters")


def _header(kdf: KdfParams, salt: bytes, key: bytes) -> bytes:
    return HEADER.pack(
        MAGIC,
        VERSION,
        KDF_ARGON2ID,
        kdf.memory_kib,
        kdf.iterations,
        kdf.lanes,
        salt,
        key_check(key),
        secrets.token_bytes(12),
    )


def _write(path: Path, header: bytes, key: bytes, body: bytes) -> None:
    nonce = header[-12:]
    blob = header + AESGCM(key).encrypt(nonce, body, header)
    write_atomic(path, blob, mode=0o600)


def system_time_zone() -> str:
    """The machine's IANA zone name (TZ, /etc/timezone, /etc/localtime), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                zone(name)
                return name
            except ValueError:
                continue
    return "UTC"
