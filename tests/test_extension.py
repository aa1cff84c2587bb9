"""The extension loaded in Debian's Chromium: content script → service worker → tab state."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import CHROMIUM_ARGS, EXTENSION, PageServer, chromium_path
from .procs import mecene, start

sync_api = pytest.importorskip("playwright.sync_api")

PAGES = {
    ("blog.example.org", "/post"): (
        "<!doctype html><html><head><title>Post</title>"
        '<meta name="flattr:id" content="alice">'
        '<link rel="monetization" href="https://wallet.example/alice"></head>'
        "<body><article>Hello</article></body></html>"
    ),
    (
        "plain.example.com",
        "/",
    ): "<!doctype html><html><head><title>x</title></head><body>x</body></html>",
    ("forum.example.net", "/thread"): (
        "<!doctype html><html><head><title>Thread</title>"
        '<meta name="flattr:id" content="op"></head><body><article>First post'
        '<a rel="author" href="https://liberapay.com/coauthor">Co-author</a>'
        '<ol id="comments"><li class="comment" id="comment-1">'
        '<a rel="me" href="https://ko-fi.com/dan">Dan</a> Nice.</li>'
        '<li class="comment"><a rel="payment" href="https://pay.example/erin">Erin</a>'
        " Agreed.</li></ol></article></body></html>"
    ),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    s = PageServer(PAGES, tmp_path_factory.mktemp("tls")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def context(server: PageServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium with the extension loaded (DESIGN.md, "Testing as the person would")."""
    profile: Path = tmp_path_factory.mktemp("profile")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path(),
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                f"--disable-extensions-except={EXTENSION}",
                f"--load-extension={EXTENSION}",
            ],
        )
        # No warm-up page: the very first page after install must reach the
        # worker too (background.js looks at every tab again after install).
        yield ctx
        ctx.close()


def worker(context: Any) -> Any:
    workers = context.service_workers
    return workers[0] if workers else context.wait_for_event("serviceworker", timeout=15_000)


def tab_state(context: Any, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until a tab's stored state satisfies `predicate`; return the newest such."""
    sw = worker(context)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = sw.evaluate("chrome.storage.session.get(null)")
        matches = [
            {"tab": int(key[4:]), **state}
            for key, state in states.items()
            if key.startswith("tab:") and predicate(state)
        ]
        if matches:
            return max(matches, key=lambda m: m["at"])
        time.sleep(0.1)
    log = sw.evaluate("injections")
    raise AssertionError(f"no tab state matched; stored: {states}; injections: {log}")


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


def test_the_extension_loads_with_its_service_worker(context: Any) -> None:
    sw = worker(context)
    assert sw.url.startswith("chrome-extension://") and sw.url.endswith("/background.js")


def test_a_page_s_creators_reach_the_service_worker(context: Any, server: PageServer) -> None:
    page = context.new_page()
    url = server.url("blog.example.org", "/post")
    page.goto(url)
    state = tab_state(context, lambda s: s["url"] == url)
    assert [c["key"] for c in state["creators"]] == [
        "flattr:alice",
        "wm:https://wallet.example/alice",
        "domain:example.org",
    ]
    badge = worker(context).evaluate(f"chrome.action.getBadgeText({{tabId: {state['tab']}}})")
    assert badge == "2"
    page.close()


def test_a_site_without_named_creators_shows_no_badge(context: Any, server: PageServer) -> None:
    page = context.new_page()
    url = server.url("plain.example.com", "/")
    page.goto(url)
    state = tab_state(context, lambda s: s["url"] == url)
    assert [c["key"] for c in state["creators"]] == ["domain:example.com"]
    assert worker(context).evaluate(f"chrome.action.getBadgeText({{tabId: {state['tab']}}})") == ""
    page.close()


def test_single_page_navigation_is_followed(context: Any, server: PageServer) -> None:
    page = context.new_page()
    page.goto(server.url("blog.example.org", "/post"))
    tab_state(context, lambda s: s["url"].endswith("/post"))
    # An app navigates without loading: new URL, new head metadata.
    page.evaluate("""() => {
      history.pushState({}, '', '/second');
      const m = document.querySelector('meta[name="flattr:id"]');
      m.setAttribute('content', 'bob');
      document.title = 'Second';
    }""")
    state = tab_state(context, lambda s: s["url"].endswith("/second"))
    assert state["creators"][0]["key"] == "flattr:bob"
    assert state["url"].startswith(server.url("blog.example.org", "/"))
    page.close()


def test_a_content_script_cannot_move_the_page_to_another_origin(context: Any) -> None:
    sw = worker(context)
    sender = "{url: 'https://blog.example.org/post', tab: {id: 1}}"
    assert (
        sw.evaluate(f"pageUrl({sender}, 'https://evil.example/steal')")
        == "https://blog.example.org/post"
    )
    assert (
        sw.evaluate(f"pageUrl({sender}, 'https://blog.example.org/next#c')")
        == "https://blog.example.org/next"
    )
    assert sw.evaluate("pageUrl({url: 'chrome://settings/'}, null)") is None
    assert (
        sw.evaluate("checkCreators({creators: [{key: 'x y', scope: 'page', source: 's'}]})") is None
    )
    assert sw.evaluate("checkCreators({creators: 'flattr:a'})") is None
    # A part of the page must be of the page's origin, and the same for no two creators.
    others = sw.evaluate("""othersOf({url: 'https://blog.example.org/post', creators: [
      {key: 'flattr:a', scope: 'page', source: 's'},
      {key: 'kofi:x', scope: 'element', source: 's', url: 'https://evil.example/x'},
      {key: 'kofi:y', scope: 'element', source: 's', url: 'https://blog.example.org/post#c1'},
      {key: 'kofi:z', scope: 'element', source: 's', url: 'https://blog.example.org/post#c1'},
      {key: 'domain:example.org', scope: 'page', source: 'site'}]}).map((o) => o.url)""")
    assert others == [
        "https://blog.example.org/post#creator=kofi%3Ax",
        "https://blog.example.org/post#c1",
        "https://blog.example.org/post#creator=kofi%3Az",
    ]


def test_pair_flattr_and_undo_against_a_real_daemon(
    context: Any, server: PageServer, tmp_path: Path
) -> None:
    """The popup's own code path: it flattrs on opening, pairs first if needed, undoes."""
    data = tmp_path / "mecene"
    assert mecene(data, "init", "--budget", "5").returncode == 0
    daemon = start(data, deposit_cents=2000)
    try:
        sw = worker(context)
        sw.evaluate(f"chrome.storage.local.set({{settings: {{port: {daemon.port}}}}})")
        page = context.new_page()
        url = server.url("blog.example.org", "/post")
        page.goto(url)
        tab = tab_state(context, lambda s: s["url"] == url)["tab"]
        popup = context.new_page()
        popup.goto(f"chrome-extension://{sw.url.split('/')[2]}/popup.html?tab={tab}")
        # First use: the popup shows the code; the person approves it.
        wait_until(popup, "() => document.getElementById('code').textContent.length === 6")
        code = popup.text_content("#code")
        approved = mecene(data, "pair", "approve", code)
        assert approved.returncode == 0, approved.stderr
        wait_until(popup, "() => document.getElementById('app').dataset.state === 'flattred'")
        assert popup.text_content("#creator") == "alice"
        badge = f"chrome.action.getBadgeText({{tabId: {tab}}})"
        assert sw.evaluate(badge) == "✓"  # flattred this month
        assert (
            popup.text_content("#figures")
            == "1 flattr this month, 5.00\u00a0€ each, of a 5.00\u00a0€ budget."
        )
        popup.set_viewport_size({"width": 340, "height": 175})
        shot = popup.screenshot(path=str(tmp_path / "popup-flattred.png"))
        assert shot.startswith(b"\x89PNG")
        if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
            (EXTENSION.parent / "docs" / "popup-flattred.png").write_bytes(shot)
        token = sw.evaluate("chrome.storage.local.get('token').then((r) => r.token)")
        _, listed = daemon.request("GET", "/clicks", token=token)
        assert [(c["url"], c["creator"]) for c in listed["clicks"]] == [(url, "flattr:alice")]
        assert listed["clicks"][0]["title"] == "Post"
        # The page changes its head (a new title): it is re-read, and stays flattred.
        page.evaluate("document.title = 'Post, edited'")
        state = tab_state(context, lambda s: s.get("title") == "Post, edited")
        assert state["flattr"]["creator"] == "flattr:alice"
        assert sw.evaluate(badge) == "✓"
        assert listed["clicks"][0]["creators"] == [
            "wm:https://wallet.example/alice",
            "domain:example.org",
        ]
        # A weight chosen afterwards: the flattr is redone with it.
        popup.select_option("#weight", "3")
        wait_until(popup, "() => document.getElementById('app').dataset.weight === '3'")
        assert popup.get_attribute("#app", "data-state") == "flattred"
        assert popup.text_content("#figures").startswith("1 flattr this month")
        live = daemon.request("GET", "/clicks", token=token)[1]["clicks"]
        assert [(c["url"], c["weight"]) for c in live] == [(url, 3)]
        # Subscribe for 6 months: the daemon has it, from this month.
        popup.click(".subscribe[data-months='6']")
        wait_until(popup, "() => document.getElementById('app').dataset.subscribed === '6'")
        subs = daemon.request("GET", "/subscriptions", token=token)[1]["subscriptions"]
        assert [(s["creator"], s["url"], s["months"]) for s in subs] == [("flattr:alice", url, 6)]
        assert "Subscribed until" in popup.text_content("#subscribed")
        # Opening the popup again does not flattr twice.
        again = context.new_page()
        again.goto(popup.url)
        wait_until(again, "() => document.getElementById('app').dataset.state === 'flattred'")
        assert len(daemon.request("GET", "/clicks", token=token)[1]["clicks"]) == 1
        again.close()
        popup.click("#undo")
        wait_until(popup, "() => document.getElementById('app').dataset.state === 'undone'")
        assert daemon.request("GET", "/clicks", token=token)[1]["clicks"] == []
        assert sw.evaluate(badge) == "2"  # undone: back to the creators found
        popup.close()
        page.close()
    finally:
        daemon.stop()


def _daemon_for(context: Any, tmp_path: Path, deposit_cents: int = 2000) -> tuple[Any, Path, str]:
    """A fresh daemon with money on its account, the extension pointed at it
    and paired; (daemon, data, token)."""
    data = tmp_path / "mecene"
    assert mecene(data, "init").returncode == 0
    daemon = start(data, deposit_cents=deposit_cents)
    sw = worker(context)
    sw.evaluate(f"chrome.storage.local.set({{settings: {{port: {daemon.port}}}}})")
    token = daemon.pair()
    sw.evaluate(f"chrome.storage.local.set({{token: '{token}', outbox: {{}}}})")
    return daemon, data, token


def _open_popup(context: Any, server: PageServer, host: str, path: str) -> Any:
    sw = worker(context)
    page = context.new_page()
    url = server.url(host, path)
    page.goto(url)
    tab = tab_state(context, lambda s: s["url"] == url)["tab"]
    popup = context.new_page()
    popup.goto(f"chrome-extension://{sw.url.split('/')[2]}/popup.html?tab={tab}")
    popup.on("close", lambda _: page.close())  # one tab per page: close them together
    return popup


def test_the_page_s_other_creators_each_have_a_flattr_button(
    context: Any, server: PageServer, tmp_path: Path
) -> None:
    """A co-author and each commenter: flattred for their own part of the page,
    never as a second flattr of the page itself, and each only once."""
    daemon, _data, token = _daemon_for(context, tmp_path)
    try:
        popup = _open_popup(context, server, "forum.example.net", "/thread")
        wait_until(popup, "() => document.getElementById('app').dataset.state === 'flattred'")
        wait_until(popup, "() => !document.getElementById('others').hidden")
        rows = popup.eval_on_selector_all(
            "#others-list li",
            "(items) => items.map((li) => [li.querySelector('.name').textContent,"
            " li.querySelector('button').dataset.key, li.querySelector('button').textContent])",
        )
        assert rows == [
            ["Co-author", "liberapay:coauthor", "Flattr"],
            ["Dan", "kofi:dan", "Flattr"],
            ["Erin", "payment:https://pay.example/erin", "Flattr"],
        ]
        for key in ("liberapay:coauthor", "kofi:dan", "payment:https://pay.example/erin"):
            popup.click(f"#others-list button[data-key='{key}']")
            wait_until(
                popup,
                f"() => document.querySelector(\"#others-list button[data-key='{key}']\")"
                ".dataset.state === 'flattred'",
            )
        assert popup.text_content("#figures").startswith("4 flattrs this month, 1.25\u00a0€ each")
        page = server.url("forum.example.net", "/thread")
        clicks = daemon.request("GET", "/clicks", token=token)[1]["clicks"]
        assert sorted((c["creator"], c["url"]) for c in clicks) == sorted(
            [
                ("flattr:op", page),
                ("liberapay:coauthor", f"{page}#creator=liberapay%3Acoauthor"),
                ("kofi:dan", f"{page}#comment-1"),  # the comment's own anchor
                (
                    "payment:https://pay.example/erin",
                    f"{page}#creator=payment%3Ahttps%3A%2F%2Fpay.example%2Ferin",
                ),
            ]
        )
        popup.set_viewport_size({"width": 340, "height": 300})
        shot = popup.screenshot(path=str(tmp_path / "popup-others.png"))
        if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
            (EXTENSION.parent / "docs" / "popup-others.png").write_bytes(shot)
        # Opened again: the buttons remember, and nothing is flattred twice.
        again = context.new_page()
        again.goto(popup.url)
        wait_until(again, "() => !document.getElementById('others').hidden")
        states = again.eval_on_selector_all(
            "#others-list button", "(bs) => bs.map((b) => b.dataset.state)"
        )
        assert states == ["flattred"] * 3
        assert len(daemon.request("GET", "/clicks", token=token)[1]["clicks"]) == 4
        again.close()
        popup.close()
    finally:
        daemon.stop()


def test_the_popup_warns_when_the_balance_is_short(
    context: Any, server: PageServer, tmp_path: Path
) -> None:
    """Nothing deposited yet: the flattr is made, and the popup says the month
    will spend only what the balance holds, and how to fix it."""
    daemon, _data, _token = _daemon_for(context, tmp_path, deposit_cents=0)  # a 0 € balance
    try:
        popup = _open_popup(context, server, "blog.example.org", "/post")
        wait_until(popup, "() => document.getElementById('app').dataset.state === 'flattred'")
        wait_until(popup, "() => !document.getElementById('warning').hidden")
        # The page's monetization link is its author's, not another creator's.
        assert popup.is_hidden("#others")
        assert popup.text_content("#warning") == (
            "Your balance is 5.00\u00a0€ short of this month's budget: "
            "deposit with `mecene deposit` or the dashboard."
        )
        popup.close()
        popup = _open_popup(context, server, "plain.example.com", "/")
        daemon.deposit(2000)
        wait_until(popup, "() => document.getElementById('app').dataset.state === 'flattred'")
        popup.close()
    finally:
        daemon.stop()


def test_the_popup_says_what_is_wrong_and_how_to_fix_it(
    context: Any, server: PageServer, tmp_path: Path
) -> None:
    daemon, data, token = _daemon_for(context, tmp_path)
    sw = worker(context)
    try:
        # The wallet is locked: said, with the fix; the flattr waits and goes through after.
        assert mecene(data, "lock").returncode == 0
        popup = _open_popup(context, server, "blog.example.org", "/post")
        wait_until(popup, "() => document.getElementById('app').dataset.state === 'queued'")
        assert popup.text_content("#message") == (
            "Saved: your wallet is locked (unlock it with `mecene unlock`); "
            "this flattr will be delivered then."
        )
        popup.close()
        assert mecene(data, "unlock").returncode == 0
        assert sw.evaluate("deliverOutbox()") == 0
        assert len(daemon.request("GET", "/clicks", token=token)[1]["clicks"]) == 1
        # Paired, then revoked: the popup asks to pair again, with a fresh code.
        assert mecene(data, "pair", "revoke", "test browser").returncode == 0
        popup = _open_popup(context, server, "plain.example.com", "/")
        wait_until(popup, "() => document.getElementById('app').dataset.state === 'pairing'")
        assert len(popup.text_content("#code")) == 6
        assert sw.evaluate("chrome.storage.local.get('token').then((r) => r.token || null)") is None
        popup.close()
    finally:
        daemon.stop()
    # The daemon is not running: the flattr is kept, and one sentence says how to fix it.
    sw.evaluate("chrome.storage.local.set({token: 'x'.repeat(43), outbox: {}})")
    popup = _open_popup(context, server, "plain.example.com", "/")
    wait_until(popup, "() => document.getElementById('app').dataset.state === 'queued'")
    assert popup.text_content("#message") == (
        "Saved: the Mécène daemon is not running (start it with `mecene run`); "
        "this flattr will be delivered then."
    )
    popup.close()
    sw.evaluate("chrome.storage.local.set({outbox: {}}).then(() => chrome.alarms.clearAll())")


def test_a_flattr_made_while_the_daemon_is_down_is_delivered_once(
    context: Any, server: PageServer, tmp_path: Path
) -> None:
    daemon, data, token = _daemon_for(context, tmp_path)
    sw = worker(context)
    port = daemon.port
    daemon.stop()
    # Flattr with the daemon down: kept, with its client id, and an alarm set.
    popup = _open_popup(context, server, "blog.example.org", "/post")
    wait_until(popup, "() => document.getElementById('app').dataset.state === 'queued'")
    assert "will be delivered then" in popup.text_content("#message")
    outbox = sw.evaluate("chrome.storage.local.get('outbox').then((r) => r.outbox)")
    assert len(outbox) == 1
    (click_id,) = outbox
    assert sw.evaluate("chrome.alarms.get('outbox').then((a) => Boolean(a))") is True
    popup.close()
    # The daemon is back on its port: the alarm's delivery runs (called here
    # directly rather than waiting 30 s), twice, and the daemon has it once.
    daemon = start(data, port)
    try:
        assert sw.evaluate("deliverOutbox()") == 0
        assert sw.evaluate("chrome.storage.local.get('outbox').then((r) => r.outbox)") == {}
        # A second delivery of the same flattr (as if an answer had been lost).
        sw.evaluate(
            "MeceneDaemon.call('POST', '/clicks', "
            + json.dumps(outbox[click_id]["body"])
            + f", '{token}')"
        )
        _, listed = daemon.request("GET", "/clicks", token=token)
        assert [c["id"] for c in listed["clicks"]] == [click_id]
        assert sw.evaluate("chrome.alarms.get('outbox').then((a) => Boolean(a))") is False
    finally:
        daemon.stop()
