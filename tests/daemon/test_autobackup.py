"""Automatic backups (daemon/autobackup.py): one when the folder is set,
one a day after, the last N kept, and a failure said, never fatal."""

from __future__ import annotations

from pathlib import Path

from daemon import backup
from daemon.server import SERVICE
from daemon.service import Service
from mecene.time import FrozenClock
from tests.support.constants import PASSPHRASE
from tests.support.daemons import Api


def service(api: Api) -> Service:
    return api.client.server.app[SERVICE]


async def test_a_folder_set_gets_a_backup_at_once_then_one_a_day_the_last_n_kept(
    api: Api, clock: FrozenClock, tmp_path: Path
) -> None:
    await api.click("https://example.org/a")
    folder = tmp_path / "usb" / "mecene"
    out = await api.call(
        "PATCH",
        "/settings",
        {"backup_dir": str(folder), "backup_keep": 2},
        token="admin",
        expect=200,
    )
    assert out["backups"]["error"] is None and out["backups"]["last_at"] is not None
    (first,) = sorted(folder.iterdir())
    opened = backup.open_backup(first, passphrase=PASSPHRASE)
    assert "daemon.sqlite" in opened.files
    # Not due again within the day; due after it.
    assert await service(api).backups.run_due() is None
    for _ in range(3):
        clock.advance(days=1, seconds=1)
        assert await service(api).backups.run_due() is not None
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 2 and first.name not in kept  # the oldest went first
    # Something else in the folder is never touched.
    (folder / "notes.txt").write_text("mine")
    clock.advance(days=1, seconds=1)
    await service(api).backups.run_due()
    assert (folder / "notes.txt").read_text() == "mine"
    settings = await api.call("GET", "/settings", token="admin", expect=200)
    assert settings["backups"]["last_file"].startswith(str(folder))


async def test_a_folder_that_cannot_take_a_backup_is_said_and_tried_again(
    api: Api, clock: FrozenClock, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = await api.call(
        "PATCH", "/settings", {"backup_dir": str(blocker / "backups")}, token="admin", expect=200
    )
    assert out["backups"]["error"].startswith(f"the backup into {blocker / 'backups'} failed")
    assert await service(api).backups.run_due() is None  # not before an hour
    blocker.unlink()
    clock.advance(hours=1, seconds=1)
    assert await service(api).backups.run_due() is not None
    assert (await api.call("GET", "/settings", token="admin", expect=200))["backups"][
        "error"
    ] is None


async def test_backup_settings_are_checked(api: Api, tmp_path: Path) -> None:
    for body in (
        {"backup_dir": "relative/folder"},
        {"backup_dir": 7},
        {"backup_keep": 0},
        {"backup_keep": 366},
        {"backup_keep": True},
    ):
        refused = await api.call("PATCH", "/settings", body, token="admin", expect=400)
        assert refused["error"] == "invalid", body
    # Inside the data directory: a backup would be lost with the disk it saves.
    data = service(api).session.wallet_path.parent
    out = await api.call(
        "PATCH", "/settings", {"backup_dir": str(data / "backups")}, token="admin", expect=200
    )
    assert "inside the data directory" in out["backups"]["error"]


async def test_no_folder_no_backup(api: Api, clock: FrozenClock) -> None:
    clock.advance(days=3)
    assert await service(api).backups.run_due() is None
    assert not list(service(api).session.wallet_path.parent.glob("*.mecene-backup"))
