"""Starting Mécène at login: a per-user XDG autostart entry (desktops, with
the tray), or a systemd user unit (`--systemd`, also without a desktop).

Both run `mecene run` from this installation. At login no passphrase is at
hand, so the daemon starts locked and says so in the tray; unlock it from
the tray's dashboard or with `mecene unlock`. Nothing is written outside the
person's own configuration directory.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ENTRY_NAME = "mecene.desktop"
UNIT_NAME = "mecene.service"


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def desktop_entry_path() -> Path:
    return config_home() / "autostart" / ENTRY_NAME


def unit_path() -> Path:
    return config_home() / "systemd" / "user" / UNIT_NAME


def command(data_dir: Path) -> list[str]:
    """`mecene run` of this installation, on this data directory."""
    exe = shutil.which("mecene")
    base = [exe] if exe else [sys.executable, "-m", "daemon"]
    return [*base, "run", "--data-dir", str(data_dir)]


def _exec_line(data_dir: Path) -> str:
    return " ".join(shlex.quote(part) for part in command(data_dir))


def desktop_entry(data_dir: Path) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Mécène\n"
        "Comment=Flattr anything on the web: the local daemon and its tray icon\n"
        f"Exec={_exec_line(data_dir)}\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def unit(data_dir: Path) -> str:
    return (
        "[Unit]\n"
        "Description=Mécène daemon (flattr anything on the web)\n"
        "After=graphical-session.target network-online.target\n\n"
        "[Service]\n"
        f"ExecStart={_exec_line(data_dir)}\n"
        "Restart=on-failure\n\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def enable(data_dir: Path, systemd: bool) -> Path:
    path = unit_path() if systemd else desktop_entry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit(data_dir) if systemd else desktop_entry(data_dir))
    if systemd and shutil.which("systemctl"):
        systemctl = ["systemctl", "--user", "enable", UNIT_NAME]  # from PATH, fixed arguments
        subprocess.run(systemctl, check=False, capture_output=True)  # noqa: S603
    return path


def disable(systemd: bool) -> Path | None:
    path = unit_path() if systemd else desktop_entry_path()
    if systemd and shutil.which("systemctl"):
        systemctl = ["systemctl", "--user", "disable", UNIT_NAME]  # from PATH, fixed arguments
        subprocess.run(systemctl, check=False, capture_output=True)  # noqa: S603
    if path.exists():
        path.unlink()
        return path
    return None


def enabled() -> list[Path]:
    return [p for p in (desktop_entry_path(), unit_path()) if p.exists()]
