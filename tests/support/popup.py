"""The extension as a person uses it: Chromium with a window (Xvfb), the back/
forward cache on, and the toolbar's real popup.

Playwright cannot see an extension's action popup (microsoft/playwright#5593):
it is a browser-owned bubble, not a tab. So the browser also opens a DevTools
port, and `RealPopup` attaches to the popup's own target over the Chrome
DevTools Protocol: it reads the popup's DOM, clicks with trusted mouse events,
takes screenshots, and sees it close when focus leaves it — as a person's
click into the page does.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from websockets.sync.client import ClientConnection, connect

from .browser import CHROMIUM_ARGS, built, chromium_path
from .xvfb import Xvfb

Install = Literal["command-line", "profile"]


@contextlib.contextmanager
def headed_chromium(
    sync_api: Any, profile: Path, home: Path | None = None, *, install: Install = "command-line"
) -> Iterator[tuple[Xvfb, Any, str]]:
    """(x, context, devtools_ws_url): Chromium with a window on a fresh X
    display, as a person runs it. `install`: "command-line", the extension as
    scripts/package builds it, loaded by --load-extension for this run;
    "profile", only what the profile holds (the README's lasting install,
    Load unpacked in chrome://extensions, and its restarts). `home`: the
    person's HOME, whose ~/.config/chromium is then the profile (Chromium
    finds the native messaging hosts' manifests in its profile directory)."""
    with Xvfb() as x, sync_api.sync_playwright() as p:
        if home is not None:
            x.home = str(home)
            profile = home / ".config" / "chromium"
            profile.mkdir(parents=True, exist_ok=True)
        extension = str(built("chromium"))
        loaded = [f"--disable-extensions-except={extension}", f"--load-extension={extension}"]
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path(),
            headless=False,
            env=x.env(),
            # Playwright turns the back/forward cache off; a person's browser has
            # it on. And its --disable-extensions would hide a lasting install.
            ignore_default_args=["--disable-back-forward-cache", "--disable-extensions"],
            args=[
                *CHROMIUM_ARGS,
                "--remote-debugging-port=0",
                *(loaded if install == "command-line" else []),
            ],
        )
        try:
            port, path = (profile / "DevToolsActivePort").read_text().split()[:2]
            yield x, ctx, f"ws://127.0.0.1:{port}{path}"
        finally:
            ctx.close()


class Cdp:
    """A minimal Chrome DevTools Protocol client over the browser's websocket."""

    def __init__(self, ws_url: str) -> None:
        # Entered as a context manager, as websockets asks; left in close().
        self.ws: ClientConnection = connect(ws_url, max_size=None, open_timeout=10).__enter__()
        self.ids = itertools.count(1)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def targets(self) -> list[dict[str, Any]]:
        return list(self.send("Target.getTargets")["targetInfos"])

    def close(self) -> None:
        self.ws.__exit__(None, None, None)


class RealPopup:
    """The toolbar popup, opened as the toolbar button or the shortcut opens it."""

    def __init__(self, cdp: Cdp, target_id: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session = cdp.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})[
            "sessionId"
        ]

    @classmethod
    def wait_open(cls, cdp: Cdp, timeout: float = 10.0) -> RealPopup:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [t for t in cdp.targets() if t["url"].endswith("/popup.html")]
            if found:
                return cls(cdp, found[0]["targetId"])
            time.sleep(0.05)
        raise AssertionError("the toolbar popup did not open")

    @classmethod
    def open(cls, cdp: Cdp, worker: Any) -> RealPopup:
        """`chrome.action.openPopup()`: the popup of the focused window's active tab."""
        worker.evaluate("chrome.action.openPopup()")
        return cls.wait_open(cdp)

    def eval(self, expression: str) -> Any:
        result = self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self, selector: str) -> str:
        return str(self.eval(f"document.querySelector({json.dumps(selector)}).textContent"))

    def state(self) -> str:
        return str(self.eval("document.getElementById('app').dataset.state"))

    def wait(self, predicate: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        # False, not an error, while the popup's document is still loading.
        check = (
            f"(() => {{ try {{ return Boolean({predicate}); }} catch (e) {{ return false; }} }})()"
        )
        while not self.eval(check):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {predicate}: {self.eval('document.body.innerText')!r}"
                )
            time.sleep(0.05)

    def wait_state(self, state: str, timeout: float = 15.0) -> None:
        self.wait(f"document.getElementById('app').dataset.state === {json.dumps(state)}", timeout)

    def click(self, selector: str) -> None:
        """A trusted mouse click at the element's centre, once it has stopped
        moving (a line the popup shows a moment after opening, such as
        whether the creator has joined, moves what is below it)."""
        where = (
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        box = self.eval(where)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            time.sleep(0.05)
            again = self.eval(where)
            if again == box:
                break
            box = again
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.cdp.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                self.session,
            )

    def type(self, selector: str, text: str) -> None:
        """Click into a field, then type `text` as trusted key input."""
        self.click(selector)
        self.wait(f"document.activeElement === document.querySelector({json.dumps(selector)})")
        self.cdp.send("Input.insertText", {"text": text}, self.session)

    def choose(self, selector: str, value: str) -> None:
        """Pick an option of a <select>, as its change event reports it."""
        self.eval(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)}); "
            f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"
        )

    def screenshot(self, path: Path) -> bytes:
        import base64

        data = base64.b64decode(
            self.cdp.send("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
        )
        path.write_bytes(data)
        return data

    def is_open(self) -> bool:
        return any(t["targetId"] == self.target_id for t in self.cdp.targets())

    def wait_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.is_open():
            if time.monotonic() > deadline:
                raise AssertionError("the popup is still open")
            time.sleep(0.05)


def click_into_page(x: Xvfb, page: Any) -> None:
    """The person clicks into the page: focus leaves the popup, which closes."""
    page.bring_to_front()
    for window in x.xdotool("search", "--onlyvisible", "--class", "chromium").split():
        x.xdotool("windowfocus", "--sync", window)
    x.xdotool("mousemove", "400", "500", "click", "1")
