"""Unlinkable contributions survive `kill -9` (issue 17): a real daemon and
a real hub under one `faketime` offset, a month that ends a few seconds
after they start, and the daemon SIGKILLed again and again while its month
is settled, its tokens issued and redeemed over a short window. In the end
every token the month planned is redeemed, each once: none lost, none
spent twice, and the hub's books are clean."""

from __future__ import annotations

import json
import random
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import Daemon, free_port, mecene, start
from tests.support.hubs import TIME_ZONE, HubProcess, faketime, offset_to_month_end, wait_for

BOUNDARY_AFTER_SECONDS = 12
WINDOW_SECONDS = 6
CLICKS = [
    ("https://one.example/a", "domain:one.example", 1),
    ("https://one.example/b", "domain:one.example", 2),
    ("https://two.example/a", "domain:two.example", 3),
    ("https://three.example/a", "domain:three.example", 1),
]


def test_tokens_survive_kill_9_and_are_spent_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", str(WINDOW_SECONDS))
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.5")  # apart from signed calls, briefly
    offset, month = offset_to_month_end(BOUNDARY_AFTER_SECONDS)
    boundary_at = time.monotonic() + BOUNDARY_AFTER_SECONDS
    prefix = faketime(offset)
    hub = HubProcess(tmp_path / "hub", free_port(), prefix).start()
    data = tmp_path / "ann"
    init = mecene(data, "init", "--budget", "7", "--time-zone", TIME_ZONE)
    assert init.returncode == 0, init.stderr
    args = ["--hub", hub.url]
    daemon: Daemon = start(data, args=args, prefix=prefix, deposit_cents=2000)
    rng = random.Random()
    kills = 0
    try:
        status, out = daemon.admin("PATCH", "/settings", {"unlinkable": True})
        assert status == 200 and out["settings"]["unlinkable"] is True, out
        token = daemon.pair()
        for url, creator, weight in CLICKS:
            body = {"id": str(uuid.uuid4()), "url": url, "creator": creator, "weight": weight}
            assert daemon.request("POST", "/clicks", body, token)[0] == 201
        assert boundary_at - time.monotonic() > 2, "too slow to set up before the month ends"

        def month_view() -> dict[str, Any]:
            status, view = daemon.admin("GET", f"/months/{month}")
            assert status == 200, view
            return dict(view)

        # From a second before the month ends until every token is redeemed:
        # killed at random moments, started again at once.
        wait_for(lambda: time.monotonic() > boundary_at - 1, "the month's last second")
        deadline = time.monotonic() + 90
        while True:
            view = month_view()
            tokens = view.get("tokens") or {}
            if set(tokens) == {"redeemed"}:
                break
            assert "failed" not in tokens, view
            assert time.monotonic() < deadline, view
            time.sleep(rng.uniform(0.2, 1.5))
            if kills < 8:
                daemon.kill()
                kills += 1
                daemon = start(data, args=args, prefix=prefix)
    finally:
        daemon.stop()
        hub.stop()

    assert kills >= 3
    planned = tokens["redeemed"]
    assert planned["cents"] == view["spend_cents"]
    conn = sqlite3.connect(tmp_path / "hub" / "hub.db")
    try:
        spent = conn.execute("SELECT count(*), sum(cents) FROM spent_tokens").fetchone()
        issued = conn.execute("SELECT tokens, cents FROM token_issues").fetchall()
    finally:
        conn.close()
    assert spent == (planned["tokens"], planned["cents"])  # each once, none lost
    assert issued == [(planned["tokens"], planned["cents"])]  # issued once
    (report,) = json.loads(hub.cli("tokens", "--json").stdout)
    assert (report["month"], report["expired"]) == (month, False)
    assert report["issued"] == report["redeemed"] == {k: planned[k] for k in ("tokens", "cents")}
    assert report["unredeemed"] == {"tokens": 0, "cents": 0}
    check = hub.cli("check")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["sum_cents"] == 0
