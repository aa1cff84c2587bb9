"""One wallet on three computers (issue 30), with real processes: a hub
(SQLite, then PostgreSQL) and three `mecene run` daemons, the second and
third joined with a one-time code from the first and with the recovery
phrase.

They flattr through one month, the same thing on two of them, an Undo on
another than the one that flattred; the third goes offline with a flattr
the others never saw, across the month's end. Then:
- the hub holds exactly one settlement for the account and month, whichever
  computer sent it, and its split covers every computer's flattrs to the
  cent (the thing flattred twice once, the undone one not at all);
- every computer shows that month settled with the same receipt; none is
  refused for good;
- the offline computer's late flattr is moved to the open month, and the
  person is told which (its month view, `mecene months`), and the others
  get it in their open month;
- `mecene-hub check` is clean;
- the hub's tables hold no creator key, URL or amount of the synced records
  in clear (the records are ciphertext of a few fixed sizes);
- a computer that joined with a code never holds the wallet's seed; removed,
  its requests are refused (even signed by hand with all it holds), its
  records no longer taken, and its daemon says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daemon.files import DataDir
from daemon.wallet import Wallet
from mecene import recordwire, signing
from mecene.encoding import unb64u
from tests.support.browser import CHROMIUM_ARGS, EXTENSION, chromium_path
from tests.support.constants import PASSPHRASE
from tests.support.daemons import Daemon, free_port, mecene, start
from tests.support.hubs import (
    PG_SERVER,
    TIME_ZONE,
    HubProcess,
    faketime,
    offset_to_month_end,
    wait_for,
)
from tests.support.hubs import Person as HubPerson

BUDGET_EUROS = 6


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_db(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    name = f"mecene_devices_{secrets.token_hex(5)}"

    async def run(sql: str) -> None:
        admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def thing(n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "url": f"https://blog{n}.example.org/post/{n}",
        "creator": f"domain:blog{n}.example.org",
        "title": f"Post {n}",
    }


def live_urls(daemon: Daemon) -> set[str]:
    status, out = daemon.admin("GET", "/clicks")
    assert status == 200, out
    return {c["url"] for c in out["clicks"]}


def code_from(data: Path) -> str:
    done = mecene(data, "devices", "add", "--name", "desk", "--json")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["code"])


def join(data: Path, code: str, hub: HubProcess, name: str) -> None:
    done = mecene(data, "devices", "join", code, "--hub", hub.url, "--name", name)
    assert done.returncode == 0, done.stderr
    assert "is now a device of the wallet" in done.stdout


def test_three_computers_share_one_month_and_send_one_settlement(
    tmp_path: Path, hub_db: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MECENE_SYNC_SECONDS", "1")
    offset, month = offset_to_month_end(60)
    prefix = faketime(offset)
    hub = HubProcess(tmp_path / "hub", free_port(), prefix, db=hub_db).start()
    desk, laptop, office = tmp_path / "desk", tmp_path / "laptop", tmp_path / "office"
    daemons: dict[str, Daemon] = {}
    try:

        def desk_wallet() -> Wallet:
            return Wallet.open(DataDir(desk).wallet, PASSPHRASE)

        init = mecene(
            desk, "init", "--budget", str(BUDGET_EUROS), "--time-zone", TIME_ZONE,
            "--unlinkable", "off",
        )  # fmt: skip
        assert init.returncode == 0, init.stderr
        args = ["--hub", hub.url]
        daemons["desk"] = start(desk, args=args, prefix=prefix, deposit_cents=2000)
        join(laptop, code_from(desk), hub, "laptop")
        # The third joins with the recovery phrase instead of a code.
        shown = mecene(desk, "recovery", "show")
        assert shown.returncode == 0, shown.stderr
        phrase = " ".join(re.findall(r"\b\d+\. ([a-z]+)", shown.stdout))
        done = mecene(
            office, "devices", "join", "--phrase", "--hub", hub.url, "--name", "office",
            env_extra={"MECENE_RECOVERY_PHRASE": phrase}, prefix=prefix,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        daemons["office"] = start(office, args=args, prefix=prefix)
        daemons["laptop"] = start(laptop, args=args, prefix=prefix)
        desk_d, laptop_d, office_d = daemons["desk"], daemons["laptop"], daemons["office"]

        # The joined computers took the wallet's settings with the code.
        settings = laptop_d.admin("GET", "/settings")[1]["settings"]
        assert (settings["budget_cents"], settings["time_zone"]) == (600, TIME_ZONE)
        listed = desk_d.admin("GET", "/devices")[1]["devices"]
        assert len(listed) == 3 and sum(d["this"] for d in listed) == 1

        one, two, three, four, late = (thing(n) for n in range(1, 6))
        # The same thing on two computers at once: one flattr.
        assert desk_d.admin("POST", "/clicks", one)[0] == 201
        assert laptop_d.admin("POST", "/clicks", {**one, "id": str(uuid.uuid4())})[0] in (
            200,
            201,
        )
        assert desk_d.admin("POST", "/clicks", two)[0] == 201
        status, made = laptop_d.admin("POST", "/clicks", three)
        assert status == 201, made
        assert office_d.admin("POST", "/clicks", four)[0] == 201
        want = {one["url"], two["url"], three["url"], four["url"]}
        for daemon in (desk_d, laptop_d, office_d):
            wait_for(lambda d=daemon: live_urls(d) >= want, "every flattr on every computer", 30)
        # A gift from the laptop reaches the desk as given, and the hub holds
        # it once (the records carry it; no computer sends it again).
        gift = {"id": str(uuid.uuid4()), "creator": "domain:gift.example", "cents": 100}
        assert laptop_d.admin("POST", "/transfers", gift)[0] == 201

        def given_on(daemon: Daemon) -> bool:
            listed = daemon.admin("GET", "/transfers")[1]["transfers"]
            return [(t["id"], t["state"]) for t in listed] == [(gift["id"], "given")]

        wait_for(lambda: given_on(desk_d), "the laptop's gift listed on the desk", 30)
        # The office computer goes offline (its hub unreachable).
        office_d.stop()
        offline = ["--hub", f"http://127.0.0.1:{free_port()}"]
        daemons["office"] = office_d = start(office, args=offline, prefix=prefix)
        # Undo on another computer than the one that flattred, while the
        # office is away: it must learn of it, not pay `three` later.
        status, _ = desk_d.admin("DELETE", f"/clicks/{three['id']}")
        assert status == 200
        want.discard(three["url"])
        wait_for(lambda: live_urls(laptop_d) == want, "the Undo on the laptop", 30)
        # Offline, the office flattrs once more: the others never see it
        # before the month ends.
        assert office_d.admin("POST", "/clicks", late)[0] == 201
        assert three["url"] in live_urls(office_d)
        office_d.stop()
        assert late["url"] not in live_urls(desk_d)

        # The month ends; one of the two online computers settles it.
        def settled(daemon: Daemon) -> dict[str, Any] | None:
            status, view = daemon.admin("GET", f"/months/{month}")
            return view if status == 200 and view["state"] == "settled" else None

        desk_month = wait_for(lambda: settled(desk_d), "the month settled on the desk", 120)
        laptop_month = wait_for(lambda: settled(laptop_d), "the month settled on the laptop", 120)
        assert desk_month["receipt"] == laptop_month["receipt"]
        doc = json.loads(desk_month["settlement"]["document"])
        spend = BUDGET_EUROS * 100
        assert doc["spend_cents"] == spend
        paid = {a["url"]: a["cents"] for a in doc["allocations"]}
        assert set(paid) == want  # `one` once, `three` undone, `late` not seen
        assert sorted(paid.values()) == [200, 200, 200]

        # The office computer comes back: its month is the one the hub kept,
        # and its late flattr moves to the open month, said where it looks.
        daemons["office"] = office_d = start(office, args=args, prefix=prefix)
        office_month = wait_for(lambda: settled(office_d), "the month settled on the office", 120)
        assert office_month["receipt"] == desk_month["receipt"]
        moved = office_month["moved"]
        assert [(m["url"], m["from_month"]) for m in moved] == [(late["url"], month)]
        assert moved[0]["to_month"] not in (None, month)
        assert late["url"] in live_urls(office_d)
        assert three["url"] not in live_urls(office_d)  # the Undo made while it was away
        for daemon in (desk_d, laptop_d):
            wait_for(lambda d=daemon: late["url"] in live_urls(d), "the late flattr moved", 30)
        told = mecene(office, "months")
        assert told.returncode == 0, told.stderr
        assert "Post 5" in told.stdout and "moved to" in told.stdout, told.stdout
        assert "refused" not in told.stdout

        if hub_db is None:  # once is enough: the dashboard, as the person sees it
            see_the_dashboard(office_d, tmp_path, month)

        # Exactly one settlement for the account and month; the books balance.
        check = hub.cli("check")
        assert check.returncode == 0, check.stderr
        settlements = hub_rows(hub, hub_db, "SELECT account, month FROM settlements")
        assert [(r[1]) for r in settlements] == [month]
        assert hub_rows(hub, hub_db, "SELECT count(*) FROM transfers") == [(1,)]
        assert given_on(office_d)  # and the third computer

        # What the computers synced is ciphertext of fixed sizes: no creator
        # key, URL or amount of the records in clear anywhere in the hub's tables.
        records = hub_rows(hub, hub_db, "SELECT data FROM records")
        assert records and all(len(unb64u(r[0])) in recordwire.SIZES for r in records)
        dump = "\n".join(
            str(row)
            for table in HUB_TABLES
            for row in hub_rows(hub, hub_db, f"SELECT * FROM {table}")  # noqa: S608 - our names
        )
        for secret in (three["url"], late["url"], "Post 3", "Post 5", "blog5.example.org"):
            assert secret not in dump
        assert "laptop" not in dump and "office" not in dump  # device names are E2E

        # The laptop joined with a code: it never held the wallet's seed (nor
        # can it show the phrase), so once removed it can no longer act for
        # the account at all.
        wallet = Wallet.open(DataDir(laptop).wallet, PASSPHRASE)
        assert not wallet.data.holds_seed and wallet.account == desk_wallet().account
        shown = mecene(laptop, "recovery", "show")
        assert shown.returncode == 1 and "does not hold its recovery phrase" in shown.stderr
        out = office_d.admin("DELETE", "/devices/laptop")
        assert out[0] == 200, out
        wait_for(
            lambda: laptop_d.admin("GET", "/hub")[1]["hub"]["removed"] is not None,
            "the laptop told it was removed",
            30,
        )
        listed = desk_d.admin("GET", "/devices")[1]["devices"]
        assert [d["name"] for d in listed if d["removed"]] == ["laptop"]
        # Its key, with all it holds, signs nothing the hub takes.
        assert wallet.data.device_key is not None
        person = HubPerson(wallet.data.device_key)
        _raw, headers = signing.signed_request(
            wallet.account, person.sign, "GET", "/v1/account", None, time.time() + offset,
            device=person.account,
        )  # fmt: skip
        try:
            urllib.request.urlopen(
                urllib.request.Request(hub.url + "/v1/account", headers=headers), timeout=10
            )
            raise AssertionError("the hub took a removed device's request")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403 and json.loads(exc.read())["error"] == "device_removed"
    finally:
        for daemon in daemons.values():
            daemon.stop()
        hub.stop()


HUB_TABLES = ("settlements", "allocations", "records", "devices", "invites", "accounts")


def hub_rows(hub: HubProcess, db: str | None, sql: str) -> list[tuple[Any, ...]]:
    if db is None:
        conn = sqlite3.connect(hub.data / "hub.db")
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(db)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def test_two_computers_unlinkable_have_the_month_s_tokens_issued_and_redeemed_once(
    tmp_path: Path, hub_db: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unlinkable payment (the default) on two computers of one wallet: the
    month's spend is debited once, its tokens are issued once for the
    account — whichever computer asked first; the other drops its own plan
    and finishes the same tokens — and each is redeemed once."""
    monkeypatch.setenv("MECENE_SYNC_SECONDS", "1")
    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", "20")
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.3")
    offset, month = offset_to_month_end(70)
    prefix = faketime(offset)
    hub = HubProcess(tmp_path / "hub", free_port(), prefix, db=hub_db).start()
    desk, laptop = tmp_path / "desk", tmp_path / "laptop"
    daemons: dict[str, Daemon] = {}
    try:
        init = mecene(desk, "init", "--budget", "3", "--time-zone", TIME_ZONE)
        assert init.returncode == 0, init.stderr
        args = ["--hub", hub.url]
        daemons["desk"] = start(desk, args=args, prefix=prefix, deposit_cents=2000)
        join(laptop, code_from(desk), hub, "laptop")
        daemons["laptop"] = start(laptop, args=args, prefix=prefix)
        old = tmp_path / "old"
        join(old, code_from(desk), hub, "old")
        daemons["old"] = start(old, args=args, prefix=prefix)
        desk_d, laptop_d, old_d = daemons["desk"], daemons["laptop"], daemons["old"]
        assert laptop_d.admin("GET", "/settings")[1]["settings"]["unlinkable"] is True
        zero, one, two, three = (thing(n) for n in range(4))
        # A third computer flattrs, then is removed in the middle of the month:
        # what it synced before counts; it holds and redeems no token.
        assert old_d.admin("POST", "/clicks", zero)[0] == 201
        wait_for(lambda: zero["url"] in live_urls(desk_d), "the old computer's flattr", 30)
        assert desk_d.admin("DELETE", "/devices/old")[0] == 200
        wait_for(
            lambda: old_d.admin("GET", "/hub")[1]["hub"]["removed"] is not None,
            "the old computer told it was removed",
            30,
        )
        assert desk_d.admin("POST", "/clicks", one)[0] == 201
        assert laptop_d.admin("POST", "/clicks", two)[0] == 201
        assert laptop_d.admin("POST", "/clicks", three)[0] == 201
        want = {zero["url"], one["url"], two["url"], three["url"]}
        for daemon in (desk_d, laptop_d):
            wait_for(lambda d=daemon: live_urls(d) == want, "every flattr on both", 30)

        def redeemed(daemon: Daemon) -> bool:
            status, view = daemon.admin("GET", f"/months/{month}")
            return status == 200 and set(view.get("tokens") or {}) == {"redeemed"}

        for daemon in (desk_d, laptop_d):
            wait_for(lambda d=daemon: redeemed(d), "every token redeemed", 150)
        views = [d.admin("GET", f"/months/{month}")[1] for d in (desk_d, laptop_d)]
        assert views[0]["receipt"] == views[1]["receipt"]
        assert views[0]["tokens"]["redeemed"]["cents"] == 300
        issues = hub_rows(hub, hub_db, "SELECT tokens, cents FROM token_issues")
        spent = hub_rows(hub, hub_db, "SELECT count(*), sum(cents) FROM spent_tokens")
        assert issues == [(30, 300)]  # issued once, for the account
        assert spent == [(30, 300)]  # each token redeemed once
        # The removed computer settled nothing, holds no token beyond its
        # plan, and signs nothing the hub takes.
        old_view = old_d.admin("GET", f"/months/{month}")[1]
        assert old_view.get("state") != "settled", old_view
        assert set(old_view.get("tokens") or {}) <= {"planned"}, old_view
        check = hub.cli("check")
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["sum_cents"] == 0
    finally:
        for daemon in daemons.values():
            daemon.stop()
        hub.stop()


def see_the_dashboard(daemon: Daemon, tmp_path: Path, month: str) -> None:
    """The office's dashboard in Debian's Chromium: its three computers, and
    the month that says which flattr came late and where it went."""
    sync_api = pytest.importorskip("playwright.sync_api")
    out = mecene(daemon.data, "open", "--print")
    assert out.returncode == 0, out.stderr
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(out.stdout.splitlines()[0])
            page.wait_for_selector("body[data-state='ready']", timeout=15_000)
            page.wait_for_selector("#devices tbody tr[data-device]", timeout=15_000)
            devices = page.eval_on_selector_all(
                "#devices tbody tr[data-device]",
                "(trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent))",
            )
            names = sorted(row[0] for row in devices)
            assert names == ["desk", "laptop", "office (this computer)"], devices
            assert all(row[3] == "active" for row in devices)
            late = page.text_content(f"#months tbody tr[data-month='{month}']") or ""
            assert "1 flattr came after it was settled (made offline" in late, late
            assert "Post 5" in late, late
            page.click("#device-add")
            page.wait_for_selector("#device-code:not([hidden])")
            code = page.text_content("#device-code") or ""
            assert re.search(r"mecene devices join \w{4}-\w{4}-\w{4}-\w{4} --hub http", code)
            panel = page.locator("#devices-panel")
            if os.environ.get("MECENE_SAVE_SCREENSHOTS"):  # refresh docs/: see README
                panel.screenshot(path=str(EXTENSION.parent / "docs" / "dashboard-devices.png"))
                page.locator("#months-panel").screenshot(
                    path=str(EXTENSION.parent / "docs" / "dashboard-months-moved.png")
                )
            assert panel.screenshot(path=str(tmp_path / "devices.png")).startswith(b"\x89PNG")
        finally:
            browser.close()
