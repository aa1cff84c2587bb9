"""The dashboard in Debian's Chromium, against a real daemon: log in through the
one-time link `mecene open` prints, see the month drawn, undo a flattr,
change the budget, revoke a browser, deposit with the fee shown first — and
check the daemon's state changed each time. Then what must stay closed."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.browsers.pairing import new_token
from daemon.files import DataDir
from daemon.wallet import Wallet
from mecene.time import add_months, month_ended_everywhere
from tests.support.browser import CHROMIUM_ARGS, EXTENSION, chromium_path
from tests.support.channel import Channel
from tests.support.constants import PASSPHRASE
from tests.support.daemons import Daemon, free_port, mecene, start
from tests.support.hubs import (
    TIME_ZONE,
    HubProcess,
    faketime,
    movable_clock,
    offset_to_month_end,
    wait_for,
)

sync_api = pytest.importorskip("playwright.sync_api")


def wait_until(page: Any, predicate: str, timeout: float = 15.0) -> None:
    """Poll `predicate` (a JS function) in `page`. Extension pages forbid eval, and
    Playwright's wait_for_function evaluates its predicate with it."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {predicate}: "
                f"{page.evaluate('() => document.body.innerText')!r}"
            )
        time.sleep(0.1)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "6", "--time-zone", "UTC").returncode == 0
    d = start(data, deposit_cents=2000)
    yield d
    d.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def login_link(daemon: Daemon) -> str:
    out = mecene(daemon.data, "open", "--print")
    assert out.returncode == 0, out.stderr
    url = out.stdout.splitlines()[0]
    assert url.startswith(f"http://127.0.0.1:{daemon.port}/dashboard/login#")
    return url


def wait_ready(page: Any) -> None:
    page.wait_for_selector("body[data-state='ready']", timeout=15_000)


def test_the_dashboard_shows_the_month_and_changes_the_daemon(
    daemon: Daemon, browser: Any, tmp_path: Path
) -> None:
    token = daemon.pair()
    flattrs = [
        ("https://alice.example/a", "flattr:alice", 2),
        ("https://bob.example/b", "domain:bob.example", 1),
        ("https://carol.example/c", "liberapay:carol", 1),
    ]
    for url, creator, weight in flattrs:
        body = {"id": str(uuid.uuid4()), "url": url, "creator": creator, "weight": weight}
        assert daemon.request("POST", "/clicks", body, token)[0] == 201

    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    page.goto(login_link(daemon))
    page.wait_for_url("**/dashboard/")
    wait_ready(page)
    # The chart: one bar per creator, the whole spend (6 € over weights 2+1+1).
    bars = page.eval_on_selector_all(
        "#chart rect.bar", "(bs) => bs.map((b) => [b.dataset.creator, Number(b.dataset.cents)])"
    )
    assert sorted(bars) == [
        ["domain:bob.example", 150],
        ["flattr:alice", 300],
        ["liberapay:carol", 150],
    ]
    assert page.text_content("#summary").startswith(
        "Balance 20.00\u00a0€ (practice hub on this computer: simulated money) · "
    )
    assert len(page.query_selector_all("#clicks tbody tr[data-click]")) == 3
    # Creators by the names a person reads, not raw keys; things by title or address.
    labels = page.eval_on_selector_all("#chart text", "(ts) => ts.map((t) => t.firstChild.data)")
    assert {"Flattr ID alice", "bob.example", "liberapay.com/carol"} <= set(labels)
    creators = page.eval_on_selector_all(
        "#clicks tbody tr[data-click] td:nth-child(2)", "(tds) => tds.map((td) => td.textContent)"
    )
    assert sorted(creators) == ["Flattr ID alice", "bob.example", "liberapay.com/carol"]
    assert "alice.example/a" in page.text_content("#clicks")
    # As a creator: nothing yet, and how to start.
    assert page.text_content("#creator").startswith("Nothing received yet.")
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
        page.screenshot(path=str(EXTENSION.parent / "docs" / "dashboard.png"), full_page=True)
    shot = page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert shot.startswith(b"\x89PNG")

    # Undo a flattr.
    first = page.get_attribute("#clicks tbody tr[data-click]", "data-click")
    page.click(f"#clicks tr[data-click='{first}'] button")
    wait_until(page, "() => document.querySelectorAll('#clicks tbody tr[data-click]').length === 2")
    live = daemon.request("GET", "/clicks", token=token)[1]["clicks"]
    assert first not in [c["id"] for c in live] and len(live) == 2

    # Change the budget; unlinkable contributions (a new wallet's default)
    # off, then on again.
    page.fill("#budget", "7.50")
    assert page.is_checked("#unlinkable")
    # Private settlements only matter to months that name their creators.
    assert page.is_disabled("#private") and page.is_visible("#private-note")
    page.uncheck("#unlinkable")
    assert page.is_enabled("#private") and page.is_hidden("#private-note")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("body[data-saved]")
    settings = daemon.admin("GET", "/settings")[1]["settings"]
    assert (settings["budget_cents"], settings["unlinkable"]) == (750, False)
    saved = page.text_content("#settings-saved")  # Save says it saved
    assert saved.endswith("paid by a settlement that names each creator you paid.")
    page.evaluate("() => { delete document.body.dataset.saved; }")
    page.check("#unlinkable")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("body[data-saved]")
    assert daemon.admin("GET", "/settings")[1]["settings"]["unlinkable"] is True
    saved = page.text_content("#settings-saved")
    assert page.is_visible("#settings-saved") and saved.startswith("Saved at ")
    assert "a budget of 7.50\u00a0€ a month." in saved
    assert saved.endswith("paid as tokens the hub cannot tie to you.")
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
        page.locator("#settings-panel").screenshot(
            path=str(EXTENSION.parent / "docs" / "dashboard-settings.png")
        )
    wait_ready(page)
    assert "of 7.50\u00a0€" in page.text_content("#summary")

    # The browser is listed with when it was paired and last used; revoked,
    # its key stops working and it is told it was disconnected.
    cells = page.eval_on_selector_all(
        "#browsers tbody tr[data-browser] td", "(tds) => tds.map((td) => td.textContent)"
    )
    assert cells[0] == "test browser" and len(cells[1]) == 8
    assert cells[2].endswith("UTC") and cells[3].endswith("UTC") and cells[4] == "active"
    page.click("#browsers tbody tr[data-browser] button")
    wait_until(
        page,
        "() => [...document.querySelectorAll('#browsers tbody td')].some((td) => "
        "td.textContent.startsWith('disconnected'))",
    )
    status, out = daemon.request("GET", "/status", token=token)
    assert (status, out["error"]) == (401, "revoked")

    # Deposit: the fee first, then the money. On a laptop's screen, with the
    # form at the bottom of the window as the person scrolled to it: the fee
    # and Confirm came below the fold, where nobody saw them.
    page.set_viewport_size({"width": 1000, "height": 700})
    page.evaluate("() => document.getElementById('deposit-form').scrollIntoView(false)")
    page.fill("#deposit-amount", "10")
    page.select_option("#deposit-method", "card")
    page.click("#deposit-form button[type=submit]")
    page.wait_for_selector("#deposit-confirm:not([hidden])")
    assert page.text_content("#deposit-quote") == (
        "Deposit 10.00\u00a0€ by card: fee 0.50\u00a0€, you pay 10.50\u00a0€."
    )
    in_view = (
        "(id) => { const r = document.getElementById(id).getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; }"
    )
    wait_until(page, f"() => ({in_view})('deposit-confirm') && ({in_view})('deposit-quote')")
    page.click("#deposit-confirm")
    wait_until(
        page, "() => document.getElementById('deposit-quote').textContent.startsWith('Deposited')"
    )
    assert daemon.admin("GET", "/status")[1]["balance_cents"] == 3000
    assert page.input_value("#deposit-amount") == ""  # not left to be paid twice
    page.set_viewport_size({"width": 1000, "height": 1400})
    # The wallet's passphrase is not offered to the browser's password manager:
    # saved next to the wallet, it would open it for anyone at this computer.
    for field in ("#passphrase", "#old-passphrase", "#new-passphrase", "#new-passphrase-again"):
        assert page.get_attribute(field, "autocomplete") == "off", field

    # Lock from the dashboard, unlock with the passphrase.
    page.click("#lock")
    page.wait_for_selector("body[data-state='locked']")
    assert daemon.admin("GET", "/status")[1]["locked"] is True
    page.fill("#passphrase", PASSPHRASE)
    page.click("#unlock-form button")
    wait_ready(page)
    assert daemon.admin("GET", "/status")[1]["locked"] is False
    page.close()


def test_the_dashboard_left_open_follows_the_daemon_live(
    daemon: Daemon, browser: Any, tmp_path: Path
) -> None:
    """Left open, the dashboard showed 27.00 € and 5 flattrs while the truth
    was 23.50 € and 11. Now it updates itself when anything changes: flattrs
    from a browser, a deposit from the terminal, with no reload; and what the
    person is typing in the settings is not written over."""
    token = daemon.pair()
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    page.goto(login_link(daemon))
    page.wait_for_url("**/dashboard/")
    wait_ready(page)
    assert len(page.query_selector_all("#clicks tbody tr[data-click]")) == 0
    page.fill("#budget", "9")  # typed, not saved
    page.evaluate("() => { window.stillThisPage = true; }")  # gone if the page reloaded
    for i in range(3):
        body = {"id": str(uuid.uuid4()), "url": f"https://a.example/{i}", "creator": "flattr:a"}
        assert daemon.request("POST", "/clicks", body, token)[0] == 201
    wait_until(page, "() => document.querySelectorAll('#clicks tbody tr[data-click]').length === 3")
    deposited = mecene(daemon.data, "deposit", "5", "--method", "bank", "--yes")
    assert deposited.returncode == 0, deposited.stderr
    balance = daemon.admin("GET", "/status")[1]["balance_cents"]
    assert balance > 2000
    wait_until(
        page,
        "() => document.getElementById('summary').textContent.startsWith("
        f"'Balance {balance // 100}.{balance % 100:02d}\u00a0€')",
    )
    assert page.input_value("#budget") == "9"  # not written over
    assert page.evaluate("() => window.stillThisPage") is True
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):
        page.screenshot(path=str(EXTENSION.parent / "docs" / "dashboard-live.png"), full_page=True)
    page.close()


def test_the_dashboard_is_closed_to_everyone_else(daemon: Daemon, browser: Any) -> None:
    link = login_link(daemon)
    context = browser.new_context()
    page = context.new_page()
    page.goto(link)
    page.wait_for_url("**/dashboard/")
    wait_ready(page)
    base = f"http://127.0.0.1:{daemon.port}"
    # The link works once.
    again = browser.new_context().new_page()
    again.goto(link)
    again.wait_for_selector("body[data-state='refused']")
    assert "not valid any more" in again.text_content("#login-state")
    # Without the session: nothing. With it, but from a web page's origin: nothing.
    assert again.request.get(f"{base}/api/v1/status").status == 401
    foreign = context.request.get(
        f"{base}/api/v1/settings", headers={"Origin": "https://evil.example"}
    )
    assert foreign.status == 403 and foreign.json()["error"] == "bad_origin"
    form = context.request.patch(
        f"{base}/api/v1/settings",
        data="budget_cents=20000",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": base},
    )
    assert form.status == 415
    # The cookie alone opens nothing: every server on 127.0.0.1 receives it.
    assert context.request.get(f"{base}/api/v1/settings").status == 401
    secret = page.evaluate("() => sessionStorage.getItem('mecene-session')")
    with_secret = context.request.get(
        f"{base}/api/v1/settings", headers={"X-Mecene-Session": secret}
    )
    assert with_secret.status == 200  # the session works, cookie and secret together
    assert (
        browser.new_context()
        .request.get(f"{base}/api/v1/settings", headers={"X-Mecene-Session": secret})
        .status
        == 401
    )  # and the secret alone is not enough either
    # The cookie is out of reach of scripts and of other sites.
    (cookie,) = [c for c in context.cookies() if c["name"] == "mecene_dashboard"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    # The page itself cannot be framed, and runs only its own scripts.
    headers = page.request.get(f"{base}/dashboard/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    # Signing out ends the session, and leaves nothing to press but the way back in.
    page.click("#logout")
    page.wait_for_selector("body[data-state='signed-out']")
    assert (
        context.request.get(f"{base}/api/v1/settings", headers={"X-Mecene-Session": secret}).status
        == 401
    )
    assert not page.is_visible("#logout") and not page.is_visible("#lock")
    assert page.text_content("#summary") == "Signed out: run mecene open for a new login link."
    assert page.evaluate("() => sessionStorage.getItem('mecene-session')") is None
    # A wrong code, or a guessed one, opens nothing.
    wrong = context.request.post(
        f"{base}/api/v1/dashboard/session",
        data='{"code": "' + "x" * 43 + '"}',
        headers={"Content-Type": "application/json", "Origin": base},
    )
    assert wrong.status == 401
    context.close()


def test_the_dashboard_lists_pairing_codes_to_approve_or_deny(
    daemon: Daemon, browser: Any, tmp_path: Path
) -> None:
    """A browser's panel shows a code; the person approves it here (the panel
    names this place), or denies one they do not recognise."""
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(login_link(daemon))
    page.wait_for_url("**/dashboard/")
    wait_ready(page)
    assert page.is_hidden("#pairing-panel")
    asked = []
    keys = [new_token(), new_token()]
    channels = [Channel(daemon.channel_path), Channel(daemon.channel_path)]
    for channel, key, client in zip(
        channels, keys, ("Chromium on Linux", "Firefox on Linux"), strict=True
    ):
        status, body = channel.call("POST", "/pairing", {"client": client}, key)
        assert status == 201
        asked.append(body)
    page.wait_for_selector("#pairing-panel:not([hidden])", timeout=10_000)
    rows = page.eval_on_selector_all(
        "#pending tbody tr[data-code]",
        "(rs) => rs.map((r) => [r.dataset.code, r.children[1].textContent])",
    )
    assert sorted(rows) == sorted(
        [
            [a["code"], c]
            for a, c in zip(asked, ("Chromium on Linux", "Firefox on Linux"), strict=True)
        ]
    )
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):
        page.screenshot(path=str(EXTENSION.parent / "docs" / "dashboard-pairing.png"))
    chromium, firefox = asked
    page.click(f"#pending tr[data-code='{chromium['code']}'] button:text('Approve')")
    page.click(f"#pending tr[data-code='{firefox['code']}'] button:text('Deny')")
    wait_until(page, "() => document.getElementById('pairing-panel').hidden")
    got = channels[0].call("GET", f"/pairing/{chromium['pairing_id']}", key=keys[0])
    assert got == (200, {"status": "approved"})
    assert channels[1].call("GET", f"/pairing/{firefox['pairing_id']}", key=keys[1]) == (
        200,
        {"status": "denied"},
    )
    for channel in channels:
        channel.close()


def test_another_local_server_gets_the_cookie_and_can_do_nothing_with_it(
    daemon: Daemon, browser: Any
) -> None:
    """The attack: the person signs into the dashboard, then opens any other
    server on 127.0.0.1 (a dev server). Cookies ignore the port, so that server
    receives `mecene_dashboard=…`; it replays it from a plain program, as the
    browser would send it, with the dashboard's Origin. Nothing opens."""
    import http.server
    import json
    import threading
    import urllib.error
    import urllib.request

    seen: list[str] = []

    class DevServer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Cookie", ""))
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<title>dev server</title><p>hello")

        def log_message(self, *args: Any) -> None:
            pass

    dev = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DevServer)
    threading.Thread(target=dev.serve_forever, daemon=True).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(login_link(daemon))
        page.wait_for_url("**/dashboard/")
        wait_ready(page)
        page.goto(f"http://127.0.0.1:{dev.server_address[1]}/")
        page.wait_for_selector("p")
        cookie = seen[0]  # the page (the browser may ask for /favicon.ico next)
        assert "mecene_dashboard=" in cookie  # the browser did hand it over
        base = f"http://127.0.0.1:{daemon.port}"
        for method, path, body in [
            ("GET", "/settings", None),
            ("PATCH", "/settings", {"budget_cents": 20000}),
            ("GET", "/hub/account", None),
            ("POST", "/wallet/lock", {}),
        ]:
            request = urllib.request.Request(
                f"{base}/api/v1{path}",
                method=method,
                data=None if body is None else json.dumps(body).encode(),
                headers={"Cookie": cookie, "Origin": base, "Content-Type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            refused.value.close()  # its response holds the connection
            assert refused.value.code == 401, (method, path)
        settings = daemon.admin("GET", "/settings")[1]["settings"]
        assert settings["budget_cents"] == 600  # nothing moved
        assert daemon.admin("GET", "/status")[1]["locked"] is False
        context.close()
    finally:
        dev.shutdown()
        dev.server_close()


def test_the_dashboard_reads_well_420_pixels_wide(
    daemon: Daemon, browser: Any, tmp_path: Path
) -> None:
    """A phone-sized window: nothing spills sideways off the page (tables
    scroll in their own box), and the chart's words stay 12 px, not a 720-px
    drawing shrunk to 7."""
    token = daemon.pair()
    for n, creator in enumerate(
        ["liberapay:a-rather-long-creator-name", "domain:example.org", "flattr:alice"]
    ):
        url = f"https://site{n}.example/a/long/path/to/an/article-{n}?page=2"
        body = {"id": str(uuid.uuid4()), "url": url, "creator": creator, "weight": 1 + n}
        assert daemon.request("POST", "/clicks", body, token)[0] == 201
    page = browser.new_page(viewport={"width": 420, "height": 900})
    page.goto(login_link(daemon))
    page.wait_for_url("**/dashboard/")
    wait_ready(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 420
    overflowing = page.evaluate(
        "() => [...document.querySelectorAll('section')]"
        ".filter((s) => s.getBoundingClientRect().right > 420).map((s) => s.id)"
    )
    assert overflowing == []
    heights = page.eval_on_selector_all(
        "#chart text", "(ts) => ts.map((t) => t.getBoundingClientRect().height)"
    )
    assert len(heights) == 6 and min(heights) >= 11, heights
    inside = page.evaluate(
        "() => { const svg = document.getElementById('chart').getBoundingClientRect();"
        " return [...document.querySelectorAll('#chart text, #chart rect')]"
        ".every((e) => e.getBoundingClientRect().right <= svg.right + 1); }"
    )
    assert inside  # every word and bar within the chart
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
        page.screenshot(path=str(EXTENSION.parent / "docs" / "dashboard-420.png"), full_page=True)
    shot = page.screenshot(path=str(tmp_path / "dashboard-420.png"), full_page=True)
    assert shot.startswith(b"\x89PNG")
    page.close()


HELD_FOR_THEM = {
    True: "Not on Mécène yet: held for them until they join (as tokens, it cannot come back "
    "to you).",
    False: "Not on Mécène yet: held for them for 12 months, then back to you.",
}


@pytest.mark.parametrize("unlinkable", [True, False], ids=["tokens", "linked"])
def test_the_dashboard_gives_any_creator_an_amount_with_a_note(
    daemon: Daemon, browser: Any, unlinkable: bool
) -> None:
    """Any creator key, an amount and a note to self: what they receive first,
    then the transfer, listed in the month and counted beside its budget; as
    tokens (a new wallet's default: a cent per 10-cent token, 1.23 € here too) or
    as a transfer that names the creator."""
    status, out = daemon.admin("PATCH", "/settings", {"unlinkable": unlinkable})
    assert status == 200, out
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    page.goto(login_link(daemon))
    page.wait_for_url("**/dashboard/")
    wait_ready(page)
    assert page.text_content("#transfers").endswith("Nothing given this month outside the budget.")
    page.fill("#give-key", "liberapay:carol")
    page.fill("#give-amount", "12.30")
    page.fill("#give-note", "for the podcast")
    page.click("#give-form button[type=submit]")
    page.wait_for_selector("#give-confirm:not([hidden])")
    assert page.text_content("#give-quote") == (
        "liberapay.com/carol receives 11.07\u00a0€ of 12.30\u00a0€ (the hub's 10 % fee is "
        "1.23\u00a0€). " + HELD_FOR_THEM[unlinkable]
    )
    page.click("#give-confirm")
    if unlinkable:
        # The daemon holds no tokens yet: the gift waits for tokens bought at a
        # moment of their own (within a second or two for the tests' daemons),
        # and the page says so, then shows it given.
        page.wait_for_selector("#transfers tr[data-state='sending']")
        waiting = page.text_content("#transfers tr[data-state='sending']")
        assert "waiting for its tokens: paid from tokens bought at a moment of their own" in (
            waiting or ""
        ), waiting
        if os.environ.get("MECENE_SAVE_SCREENSHOTS"):
            page.locator("#transfers").screenshot(
                path=str(EXTENSION.parent / "docs" / "dashboard-gift-waiting.png")
            )
    page.wait_for_selector("#transfers tr[data-state='given']")
    row = page.eval_on_selector(
        "#transfers tr[data-state='given']", "(tr) => [...tr.cells].map((c) => c.textContent)"
    )
    assert row == ["liberapay.com/carol", "12.30\u00a0€", "for the podcast", "given"]
    wait_until(page, "() => document.getElementById('summary').textContent.includes('given')")
    assert page.text_content("#summary").endswith("+ 12.30\u00a0€ given")
    (given,) = daemon.admin("GET", "/transfers")[1]["transfers"]
    assert (given["creator"], given["cents"], given["note"], given["state"]) == (
        "liberapay:carol", 1230, "for the podcast", "given",
    )  # fmt: skip
    if unlinkable:
        wait_until(page, "() => document.getElementById('summary').textContent.includes('2.70')")
    status = daemon.admin("GET", "/status")[1]
    if unlinkable:  # three batches of 5 € bought; 2.70 € of them held for the next gift
        assert (status["balance_cents"], status["gift_tokens_cents"]) == (2000 - 1500, 270)
        assert page.text_content("#summary").startswith(
            "Balance 5.00\u00a0€ (practice hub on this computer: simulated money), "
            "and 2.70\u00a0€ in tokens for gifts"
        )
    else:
        assert (status["balance_cents"], status["gift_tokens_cents"]) == (2000 - 1230, 0)
    # More than the balance: said before anything is given.
    page.fill("#give-key", "domain:example.org")
    page.fill("#give-amount", "20")
    page.click("#give-form button[type=submit]")
    wait_until(page, "() => document.getElementById('give-quote').textContent.includes('deposit')")
    assert page.is_hidden("#give-confirm")
    assert len(daemon.admin("GET", "/transfers")[1]["transfers"]) == 1
    page.close()


# Seconds from a daemon's start to its month's end: time to pair and flattr.
BOUNDARY_AFTER_SECONDS = 12


def test_past_months_say_what_became_of_their_money(
    tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real month ends with the embedded hub (the daemon under `faketime`,
    started again a month later): one paid by a settlement that names its
    creators, one as tokens (a new wallet's default). The Past months table
    says of each what became of its money, as a person reads it, and so
    does `mecene months`."""
    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", "2")
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.5")  # apart from signed calls, briefly
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "5", "--time-zone", TIME_ZONE).returncode == 0
    first_offset, first = offset_to_month_end(BOUNDARY_AFTER_SECONDS)
    first_ends_at = time.monotonic() + BOUNDARY_AFTER_SECONDS
    second = add_months(first, 1)
    second_ends = month_ended_everywhere(second)
    daemon = start(data, deposit_cents=2000, prefix=faketime(first_offset))
    try:
        assert daemon.admin("PATCH", "/settings", {"unlinkable": False})[0] == 200
        token = daemon.pair()

        def flattr(month: str) -> None:
            for site in ("alice.example", "bob.example"):
                url = f"https://{site}/{month}"
                body = {"id": str(uuid.uuid4()), "url": url, "creator": f"domain:{site}"}
                assert daemon.request("POST", "/clicks", body, token)[0] == 201

        def month_view(month: str, ask: bool = True) -> dict[str, Any]:
            if ask:  # what became of it: signed calls, which redemptions keep apart from
                daemon.admin("POST", "/hub/sync", {})
            return dict(daemon.admin("GET", f"/months/{month}")[1])

        flattr(first)
        assert time.monotonic() < first_ends_at - 1, "too slow to flattr before the month ended"
        wait_for(lambda: (month_view(first).get("outcome") or {}).get("escrow_cents"), first)
        assert daemon.admin("PATCH", "/settings", {"unlinkable": True})[0] == 200
        daemon.stop()
        # A month later: the next month ends a few seconds from now.
        second_offset = (
            int((second_ends - dt.datetime.now(dt.UTC)).total_seconds()) - BOUNDARY_AFTER_SECONDS
        )
        second_ends_at = time.monotonic() + BOUNDARY_AFTER_SECONDS
        daemon = start(data, prefix=faketime(second_offset))
        flattr(second)
        assert time.monotonic() < second_ends_at - 1, "too slow to flattr before the month ended"
        wait_for(
            lambda: set(month_view(second, ask=False).get("tokens") or {}) == {"redeemed"},
            second,
        )

        count = month_view(second)["tokens"]["redeemed"]["tokens"]
        # The command says it too, in its own table.
        listed = mecene(data, "months")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split()[-1] == "tokens"
        newer, older = lines[-2:]
        # Redeemed for creators who have not joined: held at the hub, not
        # "delivered" (as it read).
        held = f"{count} tokens, {count} held for creators not on Mécène yet"
        assert newer.startswith(second) and newer.endswith(held), newer
        assert older.startswith(first) and older.endswith("—")

        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.goto(login_link(daemon))
        page.wait_for_url("**/dashboard/")
        wait_ready(page)
        rows = page.eval_on_selector_all(
            "#months tbody tr[data-month]",
            "(trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent))",
        )
        as_of = month_view(first)["outcome_at"][:10]
        assert rows == [
            [
                named(second), "settled", "5.00\u00a0€", "—",
                f"paid as {count} tokens the hub cannot tie to you; {count} (5.00\u00a0€) held"
                " at the hub for creators not on Mécène yet, theirs when they join",
            ],
            [
                named(first), "settled", "5.00\u00a0€", "—",
                "5.00\u00a0€ held for creators not on Mécène yet (back to you after 12 months) "
                f"(as of {as_of})",
            ],
        ]  # fmt: skip
        if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
            page.locator("#months-panel").screenshot(
                path=str(EXTENSION.parent / "docs" / "dashboard-months.png")
            )
        shot = page.locator("#months-panel").screenshot(path=str(tmp_path / "months.png"))
        assert shot.startswith(b"\x89PNG")
        page.close()
    finally:
        daemon.stop()


def named(month: str) -> str:
    """A month as the dashboard names it: "November 2026"."""
    year, number = map(int, month.split("-"))
    return dt.date(year, number, 1).strftime("%B %Y")


def test_a_clock_that_jumped_is_said_and_confirmed_on_the_dashboard(
    tmp_path: Path, browser: Any
) -> None:
    """The date set 90 days ahead while the daemon runs: the dashboard says
    that no month closes and why, and "The date is right" closes them."""
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "6", "--time-zone", "UTC").returncode == 0
    control = tmp_path / "faketime"
    daemon = start(data, deposit_cents=2000, prefix=movable_clock(control))
    try:
        month = daemon.admin("GET", "/status")[1]["month"]
        control.write_text("+90d\n")
        page = browser.new_page()
        page.goto(login_link(daemon))
        wait_ready(page)
        assert page.is_visible("#clock-panel") and page.is_visible("#clock-confirm")
        message = page.text_content("#clock-message") or ""
        assert message.startswith("The computer's clock jumped from ") and message.endswith(
            "no month closes until you confirm the date, or set the clock right."
        )
        if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
            page.set_viewport_size({"width": 900, "height": 700})
            page.screenshot(path=str(EXTENSION.parent / "docs" / "dashboard-clock.png"))
        page.click("#clock-confirm")
        wait_until(page, "() => document.getElementById('clock-panel').hidden")
        months = {m["month"]: m["state"] for m in daemon.admin("GET", "/months")[1]["months"]}
        assert months[month] != "open"
        page.close()
    finally:
        daemon.stop()


def test_automatic_backups_are_one_setting_on_the_dashboard(
    daemon: Daemon, browser: Any, tmp_path: Path
) -> None:
    """A folder typed in the settings: the first backup is taken at once,
    the dashboard says where, and it restores."""
    page = browser.new_page()
    page.goto(login_link(daemon))
    wait_ready(page)
    assert page.text_content("#backup-state").startswith("No automatic backups")
    # The practice hub's copy is on this disk too: said so.
    records = page.text_content("#records-state") or ""
    assert records.startswith("Your practice hub lives on this computer")
    assert records.endswith("only a backup keeps them if this disk dies.")
    folder = tmp_path / "usb" / "mecene-backups"
    page.fill("#backup-dir", str(folder))
    page.fill("#backup-keep", "5")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("#backup-state[data-state='done']")
    (taken,) = folder.iterdir()
    said = page.text_content("#backup-state")
    assert said.startswith("Last backup ") and str(taken) in said
    settings = daemon.admin("GET", "/settings")[1]["settings"]
    assert (settings["backup_dir"], settings["backup_keep"]) == (str(folder), 5)
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
        page.locator("#settings-panel").screenshot(
            path=str(EXTENSION.parent / "docs" / "dashboard-backups.png")
        )
    restored = tmp_path / "restored"
    done = mecene(restored, "restore", "--from", str(taken))
    assert done.returncode == 0, done.stderr
    page.close()


def test_the_passphrase_is_changed_on_the_dashboard(daemon: Daemon, browser: Any) -> None:
    page = browser.new_page()
    page.goto(login_link(daemon))
    wait_ready(page)

    def change(old: str, new: str, again: str) -> str:
        page.fill("#old-passphrase", old)
        page.fill("#new-passphrase", new)
        page.fill("#new-passphrase-again", again)
        page.evaluate("() => { delete document.getElementById('passphrase-said').dataset.state; }")
        page.click("#passphrase-form button[type=submit]")
        page.wait_for_selector(
            "#passphrase-said[data-state='done'], #passphrase-said[data-state='error']"
        )
        return page.text_content("#passphrase-said") or ""

    assert change(PASSPHRASE, "a new one here", "a new one, typo") == (
        "The two new passphrases differ: nothing was changed."
    )
    assert change("not the passphrase", "a new one here", "a new one here") == (
        "Wrong passphrase: nothing was changed."
    )
    assert Wallet.open(DataDir(daemon.data).wallet, PASSPHRASE)  # still the old one
    said = change(PASSPHRASE, "a new one here", "a new one here")
    assert said.startswith("Passphrase changed")
    if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
        page.locator("#passphrase-panel").screenshot(
            path=str(EXTENSION.parent / "docs" / "dashboard-passphrase.png")
        )
    assert Wallet.open(DataDir(daemon.data).wallet, "a new one here")
    assert page.input_value("#old-passphrase") == ""  # never left in the page
    page.close()


def test_the_dashboard_says_when_the_encrypted_copy_was_kept_at_the_hub(
    tmp_path: Path, browser: Any
) -> None:
    """With a hub elsewhere, the settings say when the encrypted records were
    last kept there, and that the recovery phrase brings them back."""
    hub = HubProcess(tmp_path / "hub", free_port(), []).start()
    data = tmp_path / "mecene"
    try:
        assert mecene(data, "init", "--budget", "6", "--time-zone", "UTC").returncode == 0
        daemon = start(data, args=["--hub", hub.url], deposit_cents=2000)
        try:
            wait_for(
                lambda: daemon.admin("GET", "/hub")[1]["hub"]["records"]["kept_at"],
                "the records kept at the hub",
            )
            page = browser.new_page()
            page.goto(login_link(daemon))
            wait_ready(page)
            page.wait_for_selector("#records-state[data-state='kept']")
            said = page.text_content("#records-state") or ""
            assert said.startswith(
                "An encrypted copy of your settings, subscriptions, receipts and unspent "
                "tokens is kept at your hub (last "
            ) and said.endswith("); your recovery phrase brings it back.")
            if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
                page.locator("#settings-panel").screenshot(
                    path=str(EXTENSION.parent / "docs" / "dashboard-records.png")
                )
            page.close()
        finally:
            daemon.stop()
    finally:
        hub.stop()
