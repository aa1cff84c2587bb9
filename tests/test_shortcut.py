"""The keyboard shortcut flattrs like the toolbar click: real Chromium, in a real
X session (Xvfb), a real key press (xdotool), a real daemon.

A browser shortcut is handled by the browser window, not by the page, so
headless Chromium and Playwright's keyboard (which types into the page) cannot
press it; this test runs Chromium with a window.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import CHROMIUM_ARGS, EXTENSION, PageServer, chromium_path
from .procs import mecene, start
from .test_extension import server, tab_state, worker  # noqa: F401 - server is a fixture
from .xvfb import Xvfb

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def headed(
    server: PageServer,  # noqa: F811 - the fixture
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Xvfb, Any]]:
    """Chromium with a window on a fresh X display, the extension loaded. It
    depends on the server so that it closes first, with its connections."""
    profile: Path = tmp_path_factory.mktemp("profile")
    with Xvfb() as x, sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path(),
            headless=False,
            env=x.env(),
            args=[
                *CHROMIUM_ARGS,
                f"--disable-extensions-except={EXTENSION}",
                f"--load-extension={EXTENSION}",
            ],
        )
        yield x, ctx
        ctx.close()


def test_the_keyboard_shortcut_flattrs_the_page(
    headed: tuple[Xvfb, Any],
    server: PageServer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    x, ctx = headed
    data = tmp_path / "mecene"
    assert mecene(data, "init").returncode == 0
    daemon = start(data)
    try:
        sw = worker(ctx)
        token = daemon.pair()
        sw.evaluate(
            f"chrome.storage.local.set({{settings: {{port: {daemon.port}}}, token: '{token}'}})"
        )
        (command,) = [
            c for c in sw.evaluate("chrome.commands.getAll()") if c["name"] == "_execute_action"
        ]
        assert command["shortcut"] == "Alt+Shift+M"
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        url = server.url("blog.example.org", "/post")
        page.goto(url)
        page.bring_to_front()
        tab_state(ctx, lambda s: s["url"] == url)
        assert daemon.request("GET", "/clicks", token=token)[1]["clicks"] == []
        # Give the browser window the input focus, then press the shortcut.
        for window in x.xdotool("search", "--onlyvisible", "--class", "chromium").split():
            x.xdotool("windowfocus", "--sync", window)
        x.xdotool("key", "--clearmodifiers", "alt+shift+m")
        clicks: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while not clicks and time.monotonic() < deadline:
            time.sleep(0.2)
            clicks = daemon.request("GET", "/clicks", token=token)[1]["clicks"]
        assert [(c["url"], c["creator"], c["title"]) for c in clicks] == [
            (url, "flattr:alice", "Post")
        ]
        # The popup it opened is the toolbar's: it told the worker, which shows ✓.
        tab = tab_state(ctx, lambda s: bool(s.get("flattr")))["tab"]
        assert sw.evaluate(f"chrome.action.getBadgeText({{tabId: {tab}}})") == "✓"
    finally:
        daemon.stop()
