"""One wallet on two computers, each with its own browser (issue 30): Debian's
Chromium pairs with the first computer's daemon, Debian's Firefox ESR with
the second's, both daemons devices of one wallet on one real hub process.
Each flattrs a page through its real toolbar popup; each popup, opened
again, shows the same month — both flattrs and what each comes to."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import PageServer
from tests.support.daemons import Daemon, free_port, mecene, pair_extension, start
from tests.support.hubs import HubProcess, wait_for
from tests.support.people import person_in

sync_api = pytest.importorskip("playwright.sync_api")

PAGES = {
    # A post whose head names its creator with Flattr's meta tag (flattr:id),
    # as the Flattr WordPress plugin and Flattr's own docs wrote it.
    ("blog.example.org", "/post"): (
        "<!doctype html><html><head><title>Post</title>"
        '<meta name="flattr:id" content="alice"></head>'
        "<body><article>Hello</article></body></html>"
    ),
    # A WordPress post with the Flattr plugin's JavaScript button (class
    # FlattrButton, parameters in rev=), as the plugin wrote it.
    ("wp.example.org", "/2026/11/holiday/"): (
        "<!doctype html><html><head><title>My holiday in Brittany – Bob's blog</title>"
        "</head><body><article><h1>My holiday in Brittany</h1><p>We spent a week by the"
        ' sea.</p><a class="FlattrButton" style="display:none;" title="My holiday in Brittany"'
        ' rev="flattr;uid:bob;category:text;tags:travel,brittany;"'
        ' href="https://wp.example.org/2026/11/holiday/">We spent a week by the sea…</a>'
        "</article></body></html>"
    ),
}
HOSTS = sorted({host for host, _path in PAGES})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PageServer]:
    (tmp_path / "tls").mkdir()
    s = PageServer(PAGES, tmp_path / "tls").start()
    yield s
    s.stop()


def visited(person: Any, url: str) -> None:
    person.goto(url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = person.worker("chrome.storage.session.get(null)")
        if any(k.startswith("tab:") and s.get("url") == url for k, s in states.items()):
            return
        time.sleep(0.1)
    raise AssertionError(f"the extension never knew {url}")


def urls(daemon: Daemon) -> set[str]:
    return {c["url"] for c in daemon.admin("GET", "/clicks")[1]["clicks"]}


def test_two_computers_two_browsers_one_month(
    tmp_path: Path, server: PageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MECENE_SYNC_SECONDS", "1")
    hub = HubProcess(tmp_path / "hub", free_port(), []).start()
    homes = {name: tmp_path / f"home-{name}" for name in ("chromium", "firefox")}
    data = {"chromium": tmp_path / "desk", "firefox": tmp_path / "laptop"}
    daemons: dict[str, Daemon] = {}
    try:
        assert mecene(data["chromium"], "init", "--budget", "5").returncode == 0
        daemons["chromium"] = start(data["chromium"], args=["--hub", hub.url], deposit_cents=2000)
        made = mecene(data["chromium"], "devices", "add", "--name", "desk", "--json")
        assert made.returncode == 0, made.stderr
        code = json.loads(made.stdout)["code"]
        joined = mecene(
            data["firefox"], "devices", "join", code, "--hub", hub.url, "--name", "laptop"
        )
        assert joined.returncode == 0, joined.stderr
        daemons["firefox"] = start(data["firefox"], args=["--hub", hub.url])
        for name, home in homes.items():
            home.mkdir()
            installed = mecene(data[name], "browser", "install", home=home)
            assert installed.returncode == 0, installed.stderr

        pages = {
            "chromium": server.url("blog.example.org", "/post"),
            "firefox": server.url("wp.example.org", "/2026/11/holiday/"),
        }
        figures: dict[str, str] = {}
        for name in ("chromium", "firefox"):
            with person_in(name, sync_api, tmp_path / f"profile-{name}", HOSTS, homes[name]) as p:
                pair_extension(p.worker, daemons[name], p.client)
                visited(p, pages[name])
                popup = p.popup()
                popup.wait_state("flattred")
                p.leave(popup)
        # Both flattrs on both computers.
        for daemon in daemons.values():
            wait_for(lambda d=daemon: urls(d) == set(pages.values()), "both flattrs on both", 30)
        for name in ("chromium", "firefox"):
            profile = tmp_path / f"profile-{name}"
            with person_in(name, sync_api, profile, HOSTS, homes[name]) as p:
                visited(p, pages[name])
                popup = p.popup()
                popup.wait_state("flattred")
                popup.wait("document.getElementById('figures').textContent.startsWith('2 flattrs')")
                figures[name] = popup.text("#figures")
                p.leave(popup)
        assert (
            figures["chromium"]
            == figures["firefox"]
            == (
                "2 flattrs this month, 2.50\u00a0€ for each flattr of weight 1, "
                "of a 5.00\u00a0€ budget."
            )
        )
    finally:
        for daemon in daemons.values():
            daemon.stop()
        hub.stop()
