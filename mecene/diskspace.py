"""Whether a failure was the disk being full, wherever it surfaced: SQLite's
SQLITE_FULL (straight from sqlite3, or wrapped by SQLAlchemy and aiosqlite),
PostgreSQL's `disk_full` (SQLSTATE 53100), or ENOSPC/EDQUOT from a file
write. A background loop that meets it says so in one line and tries again
later; a route turns it into 507 `disk_full`."""

from __future__ import annotations

import errno
import logging

SQLITE_FULL = 13  # sqlite3.SQLITE_FULL; this package does no I/O, so no sqlite3 import
POSTGRES_DISK_FULL = "53100"
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_is_full(exc: BaseException) -> bool:
    """True when `exc`, what it wraps, or what it was raised from says the disk is full."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if getattr(e, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if getattr(e, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return True
        orig = getattr(e, "orig", None)  # SQLAlchemy's DBAPIError
        todo += [e.__cause__, orig if isinstance(orig, BaseException) else None]
    return False


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """A background task's failure, said once: one line when the disk is full
    (an accident of the machine, not a bug), the traceback otherwise."""
    if disk_is_full(exc):
        log.warning("%s: the disk is full; will try again", what)
    else:
        log.error("%s; will try again", what, exc_info=exc)
