"""Every statement on `tokens`, the paired browsers (schema: daemon/store.py)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database


def live(db: Database) -> list[Any]:
    """(id, name, token_hash) of every browser not revoked."""
    return db.execute("SELECT id, name, token_hash FROM tokens WHERE revoked_at IS NULL").fetchall()


def revoked(db: Database) -> list[Any]:
    """(token_hash,) of every browser revoked: told so when it comes back."""
    return db.execute("SELECT token_hash FROM tokens WHERE revoked_at IS NOT NULL").fetchall()


def touch(db: Database, token_id: str, at: str) -> None:
    db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", [at, token_id])


def insert(db: Database, token_id: str, name: str, token_hash: str, at: str) -> None:
    db.execute(
        "INSERT INTO tokens (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
        [token_id, name, token_hash, at],
    )


def every(db: Database) -> list[Any]:
    return db.execute(
        "SELECT id, name, created_at, revoked_at, last_used_at, token_hash FROM tokens "
        "ORDER BY created_at"
    ).fetchall()


def get(db: Database, token_id: str) -> Any:
    return db.execute(
        "SELECT id, name, created_at, revoked_at, token_hash FROM tokens WHERE id = ?",
        [token_id],
    ).fetchone()


def revoke(db: Database, token_id: str, at: str) -> None:
    db.execute(
        "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [at, token_id]
    )
