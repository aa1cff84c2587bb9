"""A write that failed for want of space becomes a refusal a person can act
on (507 `disk_full`), wherever it happened: SQLite's SQLITE_FULL, or
ENOSPC/EDQUOT from a file write (the wallet, a backup). Reads go on."""

from __future__ import annotations

from mecene.diskspace import disk_is_full

from .errors import DiskFull, DomainError

MESSAGE = "the disk is full: nothing was written. Free some space; Mécène goes on by itself"


def refusal(exc: BaseException) -> DomainError | None:
    """DiskFull for a write that failed for want of space, else None."""
    return DiskFull(MESSAGE) if disk_is_full(exc) else None
