"""Opening a link in the person's browser, and knowing when that failed.

`webbrowser.open` answers True once it has started `xdg-open`, even when
`xdg-open` then finds no browser and gives up: `mecene open` and the tray's
Open dashboard said nothing and nothing opened. So on a desktop with
`xdg-open` (freedesktop's own launcher), this runs it and reads its exit
status; `$BROWSER` and other systems keep `webbrowser`'s choice."""

from __future__ import annotations

import os
import shutil
import subprocess
import webbrowser

# xdg-open returns once the browser has the link (or has started): a browser
# it runs in the foreground instead keeps it this long, and counts as started.
XDG_OPEN_WAIT_SECONDS = 10.0


def open_link(url: str) -> bool:
    """True when a browser was started with `url`, False when none could be."""
    xdg_open = shutil.which("xdg-open")
    if os.environ.get("BROWSER") or xdg_open is None:
        return webbrowser.open(url)
    try:
        done = subprocess.run(  # noqa: S603 - the desktop's own launcher, our link
            [xdg_open, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=XDG_OPEN_WAIT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return True  # still running: a browser in the foreground has it
    except OSError:
        return False
    return done.returncode == 0
