"""The extension installed for good, as README.md tells a person to install
it, in both browsers: the packages scripts/package builds, installed once,
paired once in the real popup, still there and still paired after the
browser restarts on the same profile (issue 28: Firefox forgot a temporary
add-on at every restart).

- Chromium: chrome://extensions → Developer mode → Load unpacked →
  build/chromium, chosen in the real GTK file dialog; with no warning about
  the manifest (the source's `background.scripts` made one).
- Firefox ESR: the .xpi, unsigned, installed for good with
  xpinstall.signatures.required off (about:addons' "Install Add-on From
  File…" does the same install; WebDriver BiDi's `moz:permanent` spares the
  test the file dialog).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

from tests.support.browser import PageServer, built
from tests.support.daemons import mecene, start
from tests.support.people import person_in

PAGES = {
    # Typical of a blog whose author names their Flattr id in the head.
    ("blog.example.org", "/first"): (
        "<!doctype html><html><head><title>First</title>"
        '<meta name="flattr:id" content="alice"></head><body><p>First post</p></body></html>'
    ),
    ("blog.example.org", "/second"): (
        "<!doctype html><html><head><title>Second</title>"
        '<meta name="flattr:id" content="alice"></head><body><p>Second post</p></body></html>'
    ),
}
HOSTS = ["blog.example.org"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    s = PageServer(PAGES, tmp_path_factory.mktemp("tls")).start()
    yield s
    s.stop()


def load_unpacked(person: Any, folder: Path) -> dict[str, Any]:
    """What a person does in Chromium: chrome://extensions, the Developer mode
    switch, Load unpacked, the folder typed into GTK's file dialog and Open.
    The extension's entry as chrome://extensions knows it."""
    x = person.x
    page = person.ctx.new_page()
    page.goto("chrome://extensions")
    page.click("#devMode")
    page.click("#loadUnpacked")
    deadline = time.monotonic() + 20
    dialog = ""
    while not dialog:
        assert time.monotonic() < deadline, "the folder dialog did not open"
        with contextlib.suppress(subprocess.CalledProcessError):  # none yet: exit 1
            dialog = x.xdotool("search", "--onlyvisible", "--name", "Select the extension").split()[
                0
            ]
        time.sleep(0.1)
    x.xdotool("windowfocus", "--sync", dialog)
    x.xdotool("key", "ctrl+l")
    x.xdotool("type", "--delay", "20", str(folder))
    time.sleep(0.5)  # GTK completes the folder's name as it is typed
    shape = dict(
        line.split("=") for line in x.xdotool("getwindowgeometry", "--shell", dialog).split()
    )
    # "Open", at the dialog's bottom right (GTK's file chooser).
    x.xdotool(
        "mousemove", str(int(shape["WIDTH"]) - 50), str(int(shape["HEIGHT"]) - 25), "click", "1"
    )
    entry: dict[str, Any] = {}
    while not entry:
        assert time.monotonic() < deadline + 20, "the extension was not loaded"
        infos = page.evaluate("chrome.developerPrivate.getExtensionsInfo()")
        entry = next((e for e in infos if e["name"] == "Mécène"), {})
        time.sleep(0.2)
    page.close()
    return entry


def installed_entry(person: Any) -> dict[str, Any]:
    """How the browser holds the extension now."""
    if person.name == "chromium":
        page = person.ctx.new_page()
        page.goto("chrome://extensions")
        infos = page.evaluate("chrome.developerPrivate.getExtensionsInfo()")
        page.close()
        entry = next(e for e in infos if e["name"] == "Mécène")
        return {"location": entry["location"], "path": entry["path"], "state": entry["state"]}
    found = person.driver.call(
        "chrome",
        expression="AddonManager.getAddonByID('extension@mecene.example').then((a) => a && "
        "{temporary: a.temporarilyInstalled, active: a.isActive, signed: a.signedState})",
    )
    assert found, "Firefox does not have the extension"
    return dict(found)


def clicks(daemon: Any, token: str) -> list[dict[str, Any]]:
    return list(daemon.request("GET", "/clicks", token=token)[1]["clicks"])


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


@pytest.mark.parametrize("browser", ["chromium", "firefox"])
def test_installed_for_good_it_is_still_there_and_paired_after_a_restart(
    browser: str, server: PageServer, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "5").returncode == 0
    installed = mecene(data, "browser", "install", home=home)
    assert installed.returncode == 0, installed.stderr
    daemon = start(data, deposit_cents=2000)
    first, second = (
        server.url("blog.example.org", "/first"),
        server.url("blog.example.org", "/second"),
    )
    try:
        with person_in(browser, sync_api, profile, HOSTS, home, lasting="install") as person:
            if browser == "chromium":
                entry = load_unpacked(person, built("chromium"))
                assert entry["location"] == "UNPACKED" and entry["state"] == "ENABLED"
                # The package's own manifest: nothing for chrome://extensions to warn about.
                assert (entry["installWarnings"], entry["manifestErrors"]) == ([], []), entry
            else:
                assert installed_entry(person) == {
                    "temporary": False,
                    "active": True,
                    "signed": 0,  # AddonManager.SIGNEDSTATE_MISSING: unsigned, allowed by the pref
                }
            person.goto(first)
            popup = person.popup()
            popup.wait_state("pairing")
            code = popup.text("#code")
            person.leave(popup)
            approved = mecene(data, "pair", "approve", code)
            assert approved.returncode == 0, approved.stderr
            token = wait_for(
                lambda: person.worker(
                    "chrome.storage.local.get('token').then((r) => r.token || null)"
                ),
                "the worker to collect its token",
            )
            wait_for(lambda: clicks(daemon, token), "the first page's flattr")
            before = installed_entry(person)

        # The browser is closed and started again on the same profile, loading nothing.
        with person_in(browser, sync_api, profile, HOSTS, home, lasting="restart") as person:
            assert installed_entry(person) == before
            assert (
                person.worker("chrome.storage.local.get('token').then((r) => r.token || null)")
                == token
            )
            person.goto(second)
            popup = person.popup()
            popup.wait_state("flattred")  # paired still: no code to approve
            person.leave(popup)
        assert [c["url"] for c in clicks(daemon, token)] == [first, second]
        browsers = daemon.admin("GET", "/browsers")[1]["browsers"]
        assert len(browsers) == 1, json.dumps(browsers)
    finally:
        daemon.stop()
