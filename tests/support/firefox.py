"""Debian's Firefox ESR as a person runs it: a window on Xvfb, the extension
installed, driven over WebDriver BiDi by puppeteer-core (tests/support/firefox_driver.js,
pinned in tools/webext/package-lock.json).

The toolbar popup is opened by the real shortcut (xdotool) and clicked with
real mouse clicks; it is read through a frame script in its own browser, since
Firefox's BiDi sees web pages only (tests/support/firefox_driver.js says how).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from .browser import ROOT, built, package_file
from .popup import RealPopup
from .xvfb import Xvfb

Install = Literal["temporary", "permanent", "installed", "none"]
DRIVER = Path(__file__).with_name("firefox_driver.js")
NODE_MODULES = ROOT / "tools" / "webext" / "node_modules"
# The extension's internal UUID in the test profile (its pages' address).
EXT_UUID = "6b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"


def firefox_path() -> str:
    path = shutil.which("firefox-esr")
    if path is None:
        raise RuntimeError("firefox-esr is not installed: run scripts/test, which installs it")
    return path


class Driver:
    """The Node process that holds the BiDi session: a JSON line each way."""

    def __init__(self, env: dict[str, str]) -> None:
        if not (NODE_MODULES / "puppeteer-core").is_dir():
            raise RuntimeError("puppeteer-core is missing: run scripts/test (npm ci tools/webext)")
        self.proc = subprocess.Popen(
            ["node", str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**env, "NODE_PATH": str(NODE_MODULES)},
        )
        self.ids = itertools.count(1)
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.replies.put(json.loads(line))
        self.replies.put({"id": None, "ok": False, "error": "the driver exited"})

    def call(self, cmd: str, timeout: float = 60.0, **args: Any) -> Any:
        assert self.proc.stdin is not None
        msg_id = next(self.ids)
        self.proc.stdin.write(json.dumps({"id": msg_id, "cmd": cmd, "args": args}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.replies.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"firefox driver: no answer to {cmd}") from None
            if reply.get("id") not in (msg_id, None):
                continue
            if not reply.get("ok"):
                raise AssertionError(f"firefox {cmd}: {reply.get('error')}")
            return reply.get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("close", timeout=20)
        with contextlib.suppress(Exception):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class FirefoxPopup:
    """The real toolbar popup of Firefox, read in its own process."""

    def __init__(self, firefox: Firefox) -> None:
        self.firefox = firefox

    def eval(self, expression: str) -> Any:
        return self.firefox.driver.call("popup", expression=expression)

    text = RealPopup.text
    state = RealPopup.state
    wait_state = RealPopup.wait_state

    def wait(self, predicate: str, timeout: float = 15.0) -> None:
        """As RealPopup.wait; an answer lost while the popup loads is a 'not yet'."""
        deadline = time.monotonic() + timeout
        check = (
            f"(() => {{ try {{ return Boolean({predicate}); }} catch (e) {{ return false; }} }})()"
        )
        while True:
            with contextlib.suppress(AssertionError):
                if self.eval(check):
                    return
            if time.monotonic() > deadline:
                body = self.eval("document.body && document.body.innerText")
                raise AssertionError(f"timed out waiting for {predicate}: {body!r}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (XTEST) at the element's centre on the screen,
        once it stays put: the popup grows as its answers arrive (the joined
        line), and a person aims at where the button is, not where it was."""
        where = (
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [Math.round(window.mozInnerScreenX + r.x + "
            "r.width / 2), Math.round(window.mozInnerScreenY + r.y + r.height / 2)]; })()"
        )
        point = self.eval(where)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.15)
            again = self.eval(where)
            if again == point:
                break
            point = again
        x, y = point
        self.firefox.x.xdotool("mousemove", str(x), str(y), "click", "1")

    def type(self, selector: str, text: str) -> None:
        """Click into a field, then type `text` on the X keyboard (xdotool)."""
        self.click(selector)
        self.wait(f"document.activeElement === document.querySelector({json.dumps(selector)})")
        self.firefox.x.xdotool("type", "--delay", "40", text)

    def choose(self, selector: str, value: str) -> None:
        """Pick an option of a <select>, as its change event reports it."""
        self.eval(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)}); "
            f"s.value = {json.dumps(value)}; s.dispatchEvent(new window.Event('change')); }})()"
        )

    def screenshot(self, path: Path) -> bytes:
        """The popup as it is on the screen (ImageMagick's import of the X display)."""
        left, top, width, height = self.firefox.driver.call(
            "chrome",
            expression="(() => { const b = document.querySelector("
            "'browser.webextension-popup-browser'); const r = b.getBoundingClientRect(); "
            "return [Math.round(window.mozInnerScreenX + r.left), Math.round("
            "window.mozInnerScreenY + r.top), Math.round(r.width), Math.round(r.height)]; })()",
        )
        subprocess.run(
            ["import", "-window", "root", "-crop", f"{width}x{height}+{left}+{top}", str(path)],
            env=self.firefox.x.env(),
            check=True,
            timeout=30,
        )
        return path.read_bytes()

    def is_open(self) -> bool:
        return bool(self.firefox.driver.call("popupOpen"))

    wait_closed = RealPopup.wait_closed


class Firefox:
    """Firefox ESR with a window, the extension installed, one tab for the person."""

    name = "firefox"

    def __init__(self, x: Xvfb, driver: Driver, version: str) -> None:
        self.x = x
        self.driver = driver
        self.version = version

    def focus(self) -> None:
        for window in self.x.xdotool("search", "--onlyvisible", "--class", "firefox").split():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.x.xdotool("windowfocus", "--sync", window)

    def press_shortcut(self) -> None:
        self.focus()
        self.x.xdotool("key", "--clearmodifiers", "alt+shift+m")

    def click_toolbar_button(self) -> None:
        """A real mouse click on the extension's button in Firefox's toolbar."""
        x, y = self.driver.call(
            "chrome",
            expression="(() => { const b = document.getElementById("
            "'extension_mecene_example-BAP'); const r = b.getBoundingClientRect(); "
            "return [Math.round(window.mozInnerScreenX + r.left + r.width / 2), "
            "Math.round(window.mozInnerScreenY + r.top + r.height / 2)]; })()",
        )
        self.focus()
        self.x.xdotool("mousemove", str(x), str(y), "click", "1")

    def wait_popup(self) -> FirefoxPopup:
        deadline = time.monotonic() + 15
        while not self.driver.call("popupOpen"):
            if time.monotonic() > deadline:
                raise AssertionError("the toolbar popup did not open")
            time.sleep(0.05)
        return FirefoxPopup(self)

    def popup(self) -> FirefoxPopup:
        """The real shortcut: the popup of the active tab."""
        self.press_shortcut()
        return self.wait_popup()

    def leave(self, popup: FirefoxPopup) -> None:
        """The person clicks into the page: the popup closes."""
        self.focus()
        self.x.xdotool("mousemove", "400", "500", "click", "1")
        popup.wait_closed()


@contextlib.contextmanager
def headed_firefox(
    profile: Path,
    hosts: list[str],
    *,
    install: Install = "temporary",
    home: Path | None = None,
    prefs: dict[str, Any] | None = None,
) -> Iterator[Firefox]:
    """Firefox ESR on a fresh X display with the extension as scripts/package
    builds it. `install`: "temporary", as web-ext and about:debugging install
    an unsigned one (gone at the next start); "permanent", the .xpi for good,
    as the README's lasting install does (about:addons' "Install Add-on From
    File…" with xpinstall.signatures.required off); "installed", a restart of
    a profile that has it; "none", the same browser without it
    (bench/extension.py). `home`: the person's HOME
    (~/.mozilla/native-messaging-hosts). `prefs`: more of the profile's
    preferences (bench/extension.py: timings to the microsecond)."""
    extension = {
        "temporary": str(built("firefox")),
        "permanent": str(package_file("firefox")),
    }.get(install)
    with Xvfb() as x:
        if home is not None:
            x.home = str(home)
        driver = Driver(x.env())
        try:
            info = driver.call(
                "launch",
                timeout=120,
                executablePath=firefox_path(),
                userDataDir=str(profile),
                extension=extension,
                permanent=install == "permanent",
                installed=install == "installed",
                uuid=EXT_UUID,
                prefs=prefs or {},
                hosts=sorted(set(hosts)),
                display=x.display,
            )
            yield Firefox(x, driver, str(info["version"]))
        finally:
            driver.close()
