"""`mecene browser install` and `uninstall`: the native messaging host's
manifests, so that the browsers may start it for Mécène's extension only.

A browser starts a native messaging host only for the extensions its
manifest lists: Chromium and Chrome by extension ID (Mécène's is fixed by the
`key` in extension/manifest.json), Firefox by add-on ID
(`browser_specific_settings.gecko.id`). The manifests are the user's own
(no root needed):

    Chromium     $XDG_CONFIG_HOME/chromium/NativeMessagingHosts/app.mecene.daemon.json
    Chrome       $XDG_CONFIG_HOME/google-chrome/NativeMessagingHosts/app.mecene.daemon.json
    Firefox ESR  ~/.mozilla/native-messaging-hosts/app.mecene.daemon.json

Each names a small launcher in the data directory, which runs
daemon/nativehost.py with this Python and this data directory. Writing them
again writes the same bytes (install is idempotent); uninstall removes what
install wrote and nothing else.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .files import DataDir, write_atomic
from .nativehost import HOST_NAME

# extension/manifest.json's `key` makes this ID (tests/daemon/test_channel.py
# checks it): the first 128 bits of the key's SHA-256, each hex digit as a-p.
CHROMIUM_EXTENSION_ID = "mbfbbhfcmjidcpjnofcedjfjhhlddkee"
FIREFOX_EXTENSION_ID = "extension@mecene.example"
DESCRIPTION = "Mécène: the browser's channel to the Mécène daemon"


@dataclass(frozen=True)
class Browser:
    name: str
    commands: tuple[str, ...]  # any of them on PATH: the browser is there
    profile: Path  # or its profile directory exists
    hosts: Path  # where its user-level host manifests go
    firefox: bool


def browsers(home: Path | None = None) -> list[Browser]:
    home = home or Path.home()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [
        Browser(
            "Chromium",
            ("chromium", "chromium-browser"),
            config / "chromium",
            config / "chromium" / "NativeMessagingHosts",
            False,
        ),
        Browser(
            "Google Chrome",
            ("google-chrome", "google-chrome-stable"),
            config / "google-chrome",
            config / "google-chrome" / "NativeMessagingHosts",
            False,
        ),
        Browser(
            "Firefox",
            ("firefox-esr", "firefox"),
            home / ".mozilla",
            home / ".mozilla" / "native-messaging-hosts",
            True,
        ),
    ]


def found(browser: Browser) -> bool:
    return browser.profile.is_dir() or any(shutil.which(c) for c in browser.commands)


def launcher(data: DataDir) -> Path:
    return data.root / "native-host"


def launcher_text(data: DataDir) -> str:
    python = shlex.quote(sys.executable)
    root = shlex.quote(str(data.root.absolute()))
    return (
        "#!/bin/sh\n"
        "# Written by `mecene browser install`: a browser starts this for Mécène's\n"
        "# extension only (see the host manifests it lists).\n"
        f'MECENE_DATA_DIR={root} exec {python} -P -m daemon.nativehost "$@"\n'
    )


def manifest(browser: Browser, data: DataDir) -> dict[str, object]:
    out: dict[str, object] = {
        "name": HOST_NAME,
        "description": DESCRIPTION,
        "path": str(launcher(data).absolute()),
        "type": "stdio",
    }
    if browser.firefox:
        out["allowed_extensions"] = [FIREFOX_EXTENSION_ID]
    else:
        out["allowed_origins"] = [f"chrome-extension://{CHROMIUM_EXTENSION_ID}/"]
    return out


def manifest_path(browser: Browser) -> Path:
    return browser.hosts / f"{HOST_NAME}.json"


def install(data: DataDir, home: Path | None = None) -> list[tuple[Browser, Path | None]]:
    """Write the launcher and each found browser's manifest; (browser, the
    manifest written, or None where the browser was not found)."""
    data.create()
    write_atomic(launcher(data), launcher_text(data).encode(), mode=0o700)
    done: list[tuple[Browser, Path | None]] = []
    for browser in browsers(home):
        if not found(browser):
            done.append((browser, None))
            continue
        path = manifest_path(browser)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(manifest(browser, data), ensure_ascii=False, indent=2) + "\n"
        write_atomic(path, text.encode(), mode=0o644)
        done.append((browser, path))
    return done


def uninstall(data: DataDir, home: Path | None = None) -> list[Path]:
    """Remove the manifests that are Mécène's (and name this launcher) and the
    launcher; the paths removed."""
    removed = []
    for browser in browsers(home):
        path = manifest_path(browser)
        try:
            written = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if written.get("name") == HOST_NAME and written.get("path") == str(
            launcher(data).absolute()
        ):
            path.unlink()
            removed.append(path)
    if launcher(data).exists():
        launcher(data).unlink()
        removed.append(launcher(data))
    return removed
