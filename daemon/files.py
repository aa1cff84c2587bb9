"""The data directory: where each file lives, atomic writes, the single-daemon lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8737
# A Unix socket's path holds at most 108 bytes (sun_path), its end included.
MAX_SOCKET_PATH = 100


def default_data_dir() -> Path:
    env = os.environ.get("MECENE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mecene"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def wallet(self) -> Path:
        return self.root / "wallet.mecene"

    @property
    def database(self) -> Path:
        return self.root / "daemon.sqlite"

    @property
    def lock(self) -> Path:
        return self.root / "daemon.lock"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def records_marker(self) -> Path:
        """Present after `mecene restore`: the next start fetches the
        encrypted records from the hub first (daemon/records/)."""
        return self.root / "records.restore"

    @property
    def runtime(self) -> Path:
        """Where the running daemon says which port it listens on."""
        return self.root / "daemon.json"

    @property
    def channel(self) -> Path:
        """The browsers' channel (daemon/channel.py): a Unix socket in the data
        directory, or, when that path is too long for a socket, in the
        person's runtime directory under a name drawn from the data directory."""
        path = self.root / "channel.sock"
        if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
            return path
        base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(
            tempfile.gettempdir(), f"mecene-{os.getuid()}"
        )
        digest = hashlib.sha256(os.fsencode(self.root.absolute())).hexdigest()[:16]
        return Path(base) / f"mecene-{digest}.sock"

    def create(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new file.

    Temp file in the same directory, fsync, rename over, fsync the directory.
    """
    sweep_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sweep_temporaries(path: Path) -> None:
    """Remove the temp files of `path` that a writer killed mid-write left
    behind (`kill -9`, a power cut): never read, they would pile up."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -4]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except PermissionError:
            pass  # another user's process: alive


class NotPrivate(Exception):
    pass


def private_dir(path: Path) -> None:
    """Make `path` a directory only this user can enter, or refuse one that
    another user owns or others can open (a squatted /tmp/mecene-UID)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise NotPrivate(f"{path} is not a directory of this user's")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)


def is_private(path: Path) -> bool:
    """Whether `path` is a directory of this user's that no one else can open."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


class AlreadyRunning(Exception):
    pass


class DaemonLock:
    """An exclusive lock on the data directory, held while the daemon runs.

    The kernel drops it when the process dies, even by `kill -9`, so a crash
    never leaves a stale lock behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"another Mécène daemon (pid {holder}) is already running on {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        """Held for a command that must not run beside a daemon (AlreadyRunning)."""
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def has_display() -> bool:
    """Whether a graphical session is there for a tray icon (X11 or Wayland)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
