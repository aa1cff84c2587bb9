"""One encrypted file of everything local, taken while the daemon runs, and
its restore (DESIGN.md, "The wallet over a machine's life": backups).

A backup file:

    offset  size  field
    0       8     magic b"MECENEB\\x00"
    8       1     format version (1)
    9       32    the account's public key (whose backup this is)
    41      4     n, the wallet's length (big-endian)
    45      n     the wallet file, as it was (encrypted with its passphrase)
    45+n    12    AES-GCM nonce
    57+n    …     AES-256-GCM ciphertext of a tar archive, with its tag

Everything before the nonce is the associated data. The archive's key is
derived from the wallet's seed (HKDF-SHA256, "mecene backup v1"): the
passphrase (which opens the wallet inside) or the recovery phrase opens it.
The archive holds `manifest.json` (the format, when, the account, each
file's SHA-256), `daemon.sqlite` and, with the embedded hub, `hub/hub.db`,
`hub/hub.key` and `hub/ledger.json` (so that a restore elsewhere is known
for a copy: daemon/practicehub.py). The databases are copied with SQLite's online backup
API, each as one consistent snapshot however busy the daemon is; a copy
of the files themselves, taken while the daemon writes, may mix two states
of a file.

A restore checks everything (the archive authenticates, every file's
digest, every database whole and of a format this version knows) before
it moves anything into the data directory; files it replaces are kept
aside in `DATA_DIR/replaced-TIME/`, never deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import secrets
import sqlite3
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mecene.encoding import b64u, unb64u

from .files import DataDir, write_atomic
from .store import FileRefused, checked_connection, one_line
from .wallet import Wallet

MAGIC = b"MECENEB\x00"
VERSION = 1
HEAD = struct.Struct(">8sB32sI")
MAX_WALLET = 1024 * 1024
LABEL = b"mecene backup v1"
HUB_FILES = ("hub/hub.db", "hub/hub.key", "hub/ledger.json")


class BackupError(Exception):
    """A backup cannot be taken or restored; one line for a person."""


def archive_key(seed: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LABEL).derive(seed)


def wallet_archive_key(wallet: Wallet) -> bytes:
    """The backups' key: from the seed, or as a computer that joined with a
    code holds it (the same key: the recovery phrase opens its backups too)."""
    return wallet.data.secret("archive") or archive_key(wallet.data.seed)


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: one read transaction, so one consistent state,
    while the daemon goes on writing (its commits wait for nothing)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def take(
    data_dir: DataDir, wallet: Wallet, target: Path, now: dt.datetime | None = None
) -> dict[str, int]:
    """Write the backup of `data_dir` to `target`; the size of each file in it."""
    now = now or dt.datetime.now(dt.UTC)
    wallet_blob = data_dir.wallet.read_bytes()
    if len(wallet_blob) > MAX_WALLET:
        raise BackupError("the wallet file is too large to be a wallet")
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(dir=data_dir.root, prefix=".backup-") as tmp:
        scratch = Path(tmp)
        if data_dir.database.exists():
            _copy_database(data_dir.database, scratch / "daemon.sqlite")
            files["daemon.sqlite"] = (scratch / "daemon.sqlite").read_bytes()
        hub_db = data_dir.root / "hub" / "hub.db"
        if hub_db.exists():
            _copy_database(hub_db, scratch / "hub.db")
            files["hub/hub.db"] = (scratch / "hub.db").read_bytes()
            # The key, and the ledger's identity (daemon/practicehub.py): a
            # restore elsewhere is a copy, which serves once adopted.
            for name in ("hub/hub.key", "hub/ledger.json"):
                if (data_dir.root / name).exists():
                    files[name] = (data_dir.root / name).read_bytes()
    manifest = {
        "format": VERSION,
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "account": wallet.account,
        "files": {name: hashlib.sha256(blob).hexdigest() for name, blob in files.items()},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, blob in [("manifest.json", json.dumps(manifest).encode()), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(blob), 0o600, int(now.timestamp())
            tar.addfile(info, io.BytesIO(blob))
    head = HEAD.pack(MAGIC, VERSION, unb64u(wallet.account), len(wallet_blob)) + wallet_blob
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(wallet_archive_key(wallet)).encrypt(nonce, buffer.getvalue(), head)
    write_atomic(target, head + nonce + sealed, mode=0o600)
    return {name: len(blob) for name, blob in files.items()}


@dataclass
class Opened:
    """A backup checked whole: its manifest and files, ready to be put in place."""

    account: str
    created_at: str
    wallet_blob: bytes
    files: dict[str, bytes]


def open_backup(path: Path, *, passphrase: str | None = None, seed: bytes | None = None) -> Opened:
    """Read and check a backup, with the passphrase of the wallet it holds or
    the recovery phrase's seed. Raises BackupError (one line) if anything is
    wrong; writes nothing."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    if len(blob) < HEAD.size or blob[: len(MAGIC)] != MAGIC:
        raise BackupError(f"{path} is not a Mécène backup")
    _magic, version, account_raw, wallet_len = HEAD.unpack(blob[: HEAD.size])
    if version > VERSION:
        raise BackupError(f"{path} was written by a newer version of Mécène (format {version})")
    if wallet_len > MAX_WALLET or len(blob) < HEAD.size + wallet_len + 12 + 16:
        raise BackupError(f"{path} is damaged (truncated)")
    end = HEAD.size + wallet_len
    wallet_blob, head = blob[HEAD.size : end], blob[:end]
    account = b64u(account_raw)
    if seed is None:
        if passphrase is None:
            raise BackupError("a passphrase or the recovery phrase is needed")
        try:
            wallet = Wallet.from_bytes(wallet_blob, path, passphrase)
        except Exception as exc:
            raise BackupError(f"the wallet in {path}: {exc}") from None
        key = wallet_archive_key(wallet)
        if wallet.account != account:
            raise BackupError(f"{path} is damaged (its wallet is another account's)")
    else:
        key = archive_key(seed)
    try:
        plain = AESGCM(key).decrypt(blob[end : end + 12], blob[end + 12 :], head)
    except InvalidTag:
        raise BackupError(
            f"{path} is damaged or was changed, or the recovery phrase is another wallet's"
        ) from None
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is None:
                raise BackupError(f"{path} holds something that is not a file: {member.name}")
            files[member.name] = handle.read()
    try:
        manifest = json.loads(files.pop("manifest.json"))
        wanted = dict(manifest["files"])
    except (KeyError, ValueError, TypeError):
        raise BackupError(f"{path} has no valid manifest") from None
    if set(wanted) != set(files) or not set(files) <= {"daemon.sqlite", *HUB_FILES}:
        raise BackupError(f"{path} does not hold the files its manifest lists")
    for name, digest in wanted.items():
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise BackupError(f"{path} is damaged ({name} differs from its digest)")
    if manifest.get("account") != account:
        raise BackupError(f"{path} is damaged (its manifest names another account)")
    return Opened(account, str(manifest.get("created_at")), wallet_blob, files)


def check_databases(opened: Opened, scratch: Path) -> None:
    """Each database of the backup, written to `scratch`, is whole and of a
    format this version reads (the same checks as the daemon's start)."""
    for name in ("daemon.sqlite", "hub/hub.db"):
        if name not in opened.files:
            continue
        path = scratch / name.replace("/", "-")
        path.write_bytes(opened.files[name])
        if name == "daemon.sqlite":
            try:
                checked_connection(path).close()
            except FileRefused as exc:
                raise BackupError(f"the backup's {name}: {exc}") from None
            continue
        conn = sqlite3.connect(path)
        try:
            problems = one_line(row[0] for row in conn.execute("PRAGMA integrity_check(5)"))
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        finally:
            conn.close()
        if problems != ["ok"]:
            raise BackupError(f"the backup's {name} is damaged ({'; '.join(problems[:2])})")


def put_in_place(
    opened: Opened, data_dir: DataDir, wallet_blob: bytes, now: dt.datetime
) -> Path | None:
    """Move the backup's files into the data directory (the daemon is not
    running: the caller holds its lock). What they replace is moved to
    `replaced-TIME/` first; its path, or None if nothing was replaced."""
    data_dir.create()
    names = ["wallet.mecene", "daemon.sqlite", "daemon.sqlite-wal", "daemon.sqlite-shm", "hub"]
    present = [n for n in names if (data_dir.root / n).exists()]
    aside = None
    if present:
        aside = data_dir.root / f"replaced-{now.strftime('%Y%m%dT%H%M%SZ')}"
        aside.mkdir(mode=0o700)
        for name in present:
            os.replace(data_dir.root / name, aside / name)
    for name, blob in opened.files.items():
        target = data_dir.root / name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(target, blob, mode=0o600)
    write_atomic(data_dir.wallet, wallet_blob, mode=0o600)
    return aside


def restore(
    path: Path,
    data_dir: DataDir,
    *,
    passphrase: str | None = None,
    seed: bytes | None = None,
    new_passphrase: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Opened, Path | None]:
    """Check the backup whole, then put it in place. With the recovery
    phrase's seed, the wallet is made again under `new_passphrase` (its
    settings as the backup's wallet had them cannot be read without the
    old passphrase: a new wallet's defaults)."""
    now = now or dt.datetime.now(dt.UTC)
    opened = open_backup(path, passphrase=passphrase, seed=seed)
    data_dir.create()
    with tempfile.TemporaryDirectory(dir=data_dir.root, prefix=".restore-") as tmp:
        check_databases(opened, Path(tmp))
        wallet_blob = opened.wallet_blob
        if seed is not None:
            if new_passphrase is None:
                raise BackupError("a new passphrase is needed")
            made = Wallet.create(Path(tmp) / "wallet.mecene", new_passphrase, seed=seed)
            if made.account != opened.account:
                raise BackupError(f"{path} is another wallet's backup than this recovery phrase's")
            wallet_blob = (Path(tmp) / "wallet.mecene").read_bytes()
        aside = put_in_place(opened, data_dir, wallet_blob, now)
    return opened, aside
