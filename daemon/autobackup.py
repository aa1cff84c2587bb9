"""Automatic backups (DESIGN.md, "The wallet over a machine's life"): with a
folder set (`backup_dir`), a backup a day (`mecene backup`'s file,
daemon/backup.py) into it, the last `backup_keep` kept. The first is taken
as soon as the folder is set, so that the person sees at once that it
works, or why not.

Files are named `mecene-YYYYmmddTHHMMSSZ.mecene-backup`; only files of that
pattern are ever removed, oldest first. A backup that fails (the folder is
gone, the disk is full) is said in the status and tried again an hour
later; nothing else stops for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from mecene.time import timestamp

from . import backup
from .files import DataDir
from .session import Session

log = logging.getLogger("mecene")
EVERY = dt.timedelta(days=1)
RETRY = dt.timedelta(hours=1)
NAME = re.compile(r"^mecene-\d{8}T\d{6}Z\.mecene-backup$")


class AutoBackups:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.last_at: dt.datetime | None = None  # the last backup taken, this run or before
        self.last_file: str | None = None
        self.error: str | None = None
        self.failed_at: dt.datetime | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        at = await self.session.meta("backup_last_at")
        self.last_at = dt.datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None
        self.last_file = await self.session.meta("backup_last_file")

    def due(self, now: dt.datetime) -> bool:
        settings = self.session.settings if not self.session.locked else None
        if settings is None or settings.backup_dir is None:
            return False
        if self.failed_at is not None and now < self.failed_at + RETRY:
            return False
        return self.last_at is None or now >= self.last_at + EVERY

    async def run_due(self) -> str | None:
        """Take the backup if one is due; the file written, or None."""
        now = self.session.now()
        if not self.due(now):
            return None
        return await self.take(now)

    async def take(self, now: dt.datetime | None = None) -> str | None:
        async with self._lock:
            now = now or self.session.now()
            wallet = self.session.require_wallet()
            settings = wallet.settings
            if settings.backup_dir is None:
                return None
            folder = Path(settings.backup_dir)
            target = folder / f"mecene-{now.strftime('%Y%m%dT%H%M%SZ')}.mecene-backup"
            data_dir = DataDir(self.session.wallet_path.parent)
            try:
                await asyncio.to_thread(
                    _write, data_dir, wallet, folder, target, settings.backup_keep
                )
            except (OSError, backup.BackupError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.error = f"the backup into {folder} failed: {reason}"
                self.failed_at = now
                log.warning("%s", self.error)
                return None
            self.error = self.failed_at = None
            self.last_at, self.last_file = now, str(target)
            await self.session.set_meta("backup_last_at", timestamp(now))
            await self.session.set_meta("backup_last_file", str(target))
            log.info("backed up to %s", target)
            return str(target)

    def view(self) -> dict[str, Any]:
        return {
            "last_at": None if self.last_at is None else timestamp(self.last_at),
            "last_file": self.last_file,
            "error": self.error,
        }


def _write(data_dir: DataDir, wallet: Any, folder: Path, target: Path, keep: int) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (
        folder.resolve() == data_dir.root.resolve()
        or data_dir.root.resolve() in folder.resolve().parents
    ):
        raise backup.BackupError("the backup folder is inside the data directory: choose another")
    backup.take(data_dir, wallet, target)
    ours = sorted(p for p in folder.iterdir() if NAME.match(p.name))
    for old in ours[: max(0, len(ours) - keep)]:
        old.unlink()
