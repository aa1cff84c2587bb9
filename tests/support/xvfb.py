"""A real X session for tests: Xvfb on a display number it picks itself, and xdotool.

Used where a headless browser cannot go: a browser keyboard shortcut is
handled by the browser's own window, not by the page, so it needs a real
window with the input focus and a real key press (XTEST, through xdotool).
"""

from __future__ import annotations

import os
import shutil
import subprocess


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: run scripts/test, which installs it")
    return path


class Xvfb:
    """`with Xvfb() as x:` runs an X server; `x.display` is ":N"."""

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        self.size = f"{width}x{height}x24"
        self.display = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Xvfb:
        read_fd, write_fd = os.pipe()
        # -displayfd: the server picks a free display and writes its number.
        self.proc = subprocess.Popen(
            [
                *(_require("Xvfb"), "-displayfd", str(write_fd)),
                *("-screen", "0", self.size, "-nolisten", "tcp", "-noreset"),
            ],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number.isdigit():
            self.proc.kill()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    home: str | None = None  # a throwaway HOME for what runs on this display

    def env(self) -> dict[str, str]:
        out = {**os.environ, "DISPLAY": self.display}
        if self.home is not None:
            out["HOME"] = self.home
            out.pop("XDG_CONFIG_HOME", None)
        return out

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            [_require("xdotool"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return done.stdout
