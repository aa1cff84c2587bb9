"""The embedded hub is a practice hub: simulated money, on this machine only.
Its ledger has an identity bound to where it lives (DESIGN.md, "The wallet
over a machine's life"), so that a copy of the data directory that wakes up
elsewhere — another computer, another folder, a restored backup — does not
serve until the person says which copy is the live one: one deposit is
never spent by two ledgers.

The ledger's id is written twice: in `hub/hub.db`'s own header (SQLite's
`user_version`, which every copy of the file carries) and in
`hub/ledger.json` with the machine's id (`/etc/machine-id`, else the host
name) and the hub directory's real path. At each start all must match:
another machine or folder, a `hub.db` that is not this ledger's, or a
`ledger.json` gone while `hub.db` has an id — each stops the start with
one line, and `mecene hub adopt` makes this copy the live one (a new id).
The other copy must then never run again: nothing on this machine can see
it to stop it. A practice hub from before identities (no id anywhere) is
adopted where it is at its first start.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
from pathlib import Path
from typing import Any

from .files import write_atomic

FILE = "ledger.json"


class CopiedLedger(Exception):
    """This practice hub's files were made elsewhere; one line says what to do."""


def machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return f"host:{socket.gethostname()}"


def here(hub_dir: Path) -> dict[str, str]:
    return {"machine": machine_id(), "path": os.path.realpath(hub_dir)}


def _read_id(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0  # a damaged file: the hub's own check says so, in its line
    finally:
        conn.close()


def _write_id(db: Path, ledger: int) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.execute(f"PRAGMA user_version = {int(ledger)}")
        conn.commit()
    finally:
        conn.close()


def check(hub_dir: Path, data_root: Path) -> int:
    """The ledger's id when it lives here; a new identity for a hub that has
    none yet (a new one, or one made before identities existed). Raises
    CopiedLedger for a copy."""
    path = hub_dir / FILE
    in_db = _read_id(hub_dir / "hub.db")
    adopt_it = f"`mecene hub adopt --data-dir {data_root}`"
    try:
        recorded: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        if in_db == 0:
            return adopt(hub_dir)
        raise CopiedLedger(
            f"{path} is missing, so this practice hub's ledger (simulated money) cannot tell "
            f"whether it is a copy: if this is the only copy of this data directory, {adopt_it} "
            "makes it live again"
        ) from None
    except ValueError:
        raise CopiedLedger(
            f"{path} is damaged: if this is the only copy of this data directory, {adopt_it} "
            "makes it live again"
        ) from None
    now = here(hub_dir)
    moved = [k for k in ("machine", "path") if recorded.get(k) != now[k]]
    if moved or recorded.get("ledger") != in_db:
        where = (
            "another computer"
            if "machine" in moved
            else str(recorded.get("path"))
            if moved
            else "another copy of this data directory"
        )
        raise CopiedLedger(
            f"this data directory's practice hub (simulated money) was made on {where}: this "
            "is a copy, and two copies would spend the same deposit twice. If this copy is the "
            f"one you keep, run {adopt_it} and never start the other one again; otherwise "
            "start the original"
        )
    return in_db


def adopt(hub_dir: Path) -> int:
    """Make the practice hub in `hub_dir` the live one: a new ledger id, here."""
    hub_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ledger = secrets.randbelow(2**31 - 1) + 1
    _write_id(hub_dir / "hub.db", ledger)
    write_atomic(hub_dir / FILE, json.dumps({"ledger": ledger, **here(hub_dir)}).encode())
    return ledger
