"""The whole cycle with real processes and real HTTP: one hub, three daemons
(one paying with a settlement that names its creators, one private, one as
unlinkable tokens, a new wallet's default), a month of flattrs across a month
boundary, and every creator's money checked to the cent.

The three processes run under Debian's `faketime` with one shared offset, so
their clocks agree and the month ends 25 seconds after they start. The hub is
stopped just before the boundary and started again after it: the daemons'
closed months wait (`submitted`, `hub_unreachable`) and then arrive, once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.db import open_database
from mecene import money, tokens
from tests.support.daemons import Daemon, free_port, mecene, start
from tests.support.hubs import (
    TIME_ZONE,
    HubProcess,
    Person,
    faketime,
    offset_to_month_end,
    rows_tying,
    wait_for,
)

BOUNDARY_AFTER_SECONDS = 25
# (name, budget in euros, how it pays: init's --unlinkable, or None for a new
# wallet's default, and whether its settlement hides URLs)
PEOPLE = (("ann", "6", "off", False), ("ben", "4", "off", True), ("cat", "5", None, False))


@pytest.fixture
def cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", "3")  # cat's tokens, within seconds
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.5")  # apart from signed calls, briefly
    offset, month = offset_to_month_end(BOUNDARY_AFTER_SECONDS)
    boundary_at = time.monotonic() + BOUNDARY_AFTER_SECONDS
    prefix = faketime(offset)
    hub = HubProcess(tmp_path / "hub", free_port(), prefix).start()
    daemons: list[Daemon] = []
    try:
        for name, budget, unlinkable, private in PEOPLE:
            data = tmp_path / name
            how = ["--unlinkable", unlinkable] if unlinkable else []
            init = mecene(data, "init", "--budget", budget, "--time-zone", TIME_ZONE, *how)
            assert init.returncode == 0, init.stderr
            d = start(data, args=["--hub", hub.url], prefix=prefix)
            daemons.append(d)
            if private:
                status, out = d.admin("PATCH", "/settings", {"private": True})
                assert status == 200, out
        yield {
            "hub": hub,
            "daemons": daemons,
            "offset": offset,
            "month": month,
            "boundary_at": boundary_at,
        }
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.stop()
        hub.stop()


def test_three_daemons_one_hub_a_month_across_its_end(cycle: dict[str, Any]) -> None:
    hub: HubProcess = cycle["hub"]
    ann, ben, cat = cycle["daemons"]
    offset, month, boundary_at = cycle["offset"], cycle["month"], cycle["boundary_at"]

    # A creator who uses Mécène too: a flattr id from the hub, and giving 2 €.
    cleo = Person.new()
    status, issued = hub.call(cleo, "POST", "/v1/flattr-ids", {}, offset)
    assert status == 201, issued
    cleo_key = issued["key"]
    fee = money.deposit_fee_cents("bank", 1000)
    body = {"id": uuid.uuid4().hex, "method": "bank", "amount_cents": 1000, "fee_cents": fee}
    assert hub.call(cleo, "POST", "/v1/deposits", body, offset)[0] == 201
    giving = cleo.settlement(month, [{"creator": "domain:example.org", "cents": 200}])
    early = hub.call(cleo, "POST", "/v1/settlements", giving, offset)
    assert early[0] == 409 and early[1]["error"] == "month_not_ended"  # until it ends in UTC−12

    # Money on both accounts, through the daemons (the fee shown first).
    assert ann.deposit(2000, "bank") == 2000
    assert ben.deposit(1000, "card") == 1000
    assert cat.deposit(1000, "paypal") == 1000

    # Flattrs this month: cleo's things, and a site nobody has claimed yet.
    flattrs = [
        (ann, "https://cleo.example/one", cleo_key, 1),
        (ann, "https://cleo.example/two", cleo_key, 2),
        (ann, "https://dora.example/post", "domain:dora.example", 1),
        (ben, "https://cleo.example/one", cleo_key, 1),
        (ben, "https://dora.example/other", "domain:dora.example", 3),
        (cat, "https://cleo.example/two", cleo_key, 3),
        (cat, "https://dora.example/post", "domain:dora.example", 1),
    ]
    paired = {id(d): d.pair() for d in (ann, ben, cat)}
    for d, url, creator, weight in flattrs:
        body = {"id": str(uuid.uuid4()), "url": url, "creator": creator, "weight": weight}
        status, out = d.request("POST", "/clicks", body, paired[id(d)])
        assert status == 201, out
    assert boundary_at - time.monotonic() > 6, "too slow to set up before the month ends"

    # The hub goes down just before the month ends; the months close without it.
    wait_for(lambda: time.monotonic() > boundary_at - 4, "the last seconds of the month")
    hub.stop()

    def month_of(d: Daemon) -> dict[str, Any]:
        status, out = d.admin("GET", f"/months/{month}")
        assert status == 200, out
        return dict(out)

    for d in (ann, ben, cat):
        waiting = wait_for(
            lambda d=d: (
                (m := month_of(d))["state"] == "submitted"
                and m["sync"]["error"] == "hub_unreachable"
                and m
            ),
            f"{month} closed and waiting for the hub",
        )
        assert waiting["sync"]["attempts"] >= 1
    # Back: ann is told to send now, ben retries on his own (back-off from 5 s).
    hub.start()
    assert hub.call(cleo, "POST", "/v1/settlements", giving, offset)[0] == 201
    status, synced = ann.admin("POST", "/hub/sync", {})
    assert status == 200, synced
    settled = {
        name: wait_for(
            lambda d=d: (m := month_of(d))["state"] == "settled" and m, f"{name} settled"
        )
        for name, d in (("ann", ann), ("ben", ben), ("cat", cat))
    }

    # Every cent: what each settlement gave each creator, less one fee per
    # (giver, creator key), rounded half up, or for cat's tokens one fee per
    # token; the unclaimed site's in escrow.
    expected_net: defaultdict[str, int] = defaultdict(int)
    escrow = 0
    spent = {}
    for name, m in settled.items():
        doc = json.loads(m["settlement"]["document"])
        spent[name] = doc["spend_cents"]
        assert doc["private"] is (name != "ann")  # tokens carry no URL either
        assert doc.get("unlinkable", False) is (name == "cat")
        receipt = m["receipt"]
        assert receipt["sha256"] and receipt["spend_cents"] == doc["spend_cents"]
        per_key: defaultdict[str, int] = defaultdict(int)
        # cat's hub was told the spend alone: the shares are its daemon's.
        for a in m["allocations"] if name == "cat" else doc["allocations"]:
            per_key[a["creator"]] += a["cents"]
        assert (doc["allocations"] == []) is (name == "cat")
        for key, cents in per_key.items():
            if name == "cat":  # whole tokens of one value
                assert cents % tokens.DENOMINATION == 0
                units = [tokens.DENOMINATION] * (cents // tokens.DENOMINATION)
            else:
                units = [cents]
            if key == cleo_key:
                expected_net[key] += sum(
                    c - money.creator_fee_cents(c, nonprofit=False) for c in units
                )
            else:
                escrow += cents
    assert spent == {"ann": 600, "ben": 400, "cat": 500}  # the budgets, covered
    # cat's tokens: issued after the month settled, each redeemed at its own
    # moment within the (short) window.
    redeemed = wait_for(
        lambda: set((m := month_of(cat))["tokens"] or {}) == {"redeemed"} and m["tokens"],
        "cat's tokens redeemed",
    )
    assert redeemed["redeemed"]["cents"] == 500
    # Accepted at once; the hub's payout run routes the money within seconds.
    wait_for(
        lambda: (
            "pending" not in json.loads(hub.cli("payouts", month, "--json").stdout)["totals_cents"]
        ),
        "the month's money routed by the hub's payout run",
    )
    status, account = hub.call(cleo, "GET", "/v1/account", None, offset)
    assert status == 200, account
    assert account["creator_balance_cents"] == expected_net[cleo_key]
    assert account["withheld_cents"] == 0
    report = json.loads(hub.cli("payouts", month, "--json").stdout)
    assert report["totals_cents"] == {"credited": 1500 - escrow, "escrow": escrow + 200}
    assert report["creators"][0]["net_cents"] == expected_net[cleo_key]
    check = hub.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["sum_cents"] == 0
    # The daemons know their new balances; the month was paid once.
    for name, d, deposited in (("ann", ann, 2000), ("ben", ben, 1000), ("cat", cat, 1000)):
        status, out = d.admin("GET", "/status")
        assert out["balance_cents"] == deposited - spent[name], (name, out)
    assert ann.admin("POST", "/hub/sync", {})[0] == 200
    assert hub.call(cleo, "GET", "/v1/account", None, offset)[1] == account
    # Nothing at the hub ties cat's account to a creator cat paid; ann's
    # account, paid the same creators by a plain settlement, is tied to them.
    cat_account, ann_account = (
        json.loads(settled[name]["settlement"]["document"])["account"] for name in ("cat", "ann")
    )
    keys = [cleo_key, "domain:dora.example"]
    assert tied(hub, cat_account, keys) == []
    assert tied(hub, ann_account, keys) != []


def tied(hub: HubProcess, account: str, keys: list[str]) -> list[tuple[str, Any]]:
    async def scan() -> list[tuple[str, Any]]:
        engine = open_database(f"sqlite:///{hub.data / 'hub.db'}")
        try:
            return await rows_tying(engine, account, keys)
        finally:
            await engine.dispose()

    return asyncio.run(scan())
