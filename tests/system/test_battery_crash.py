"""Battery: a real daemon killed with SIGKILL at random moments.

1. While several clients send clicks (some retrying ids they already sent):
   after each restart the database passes `PRAGMA integrity_check`, every
   click that got a 2xx is there exactly once, and no retry added a click.
2. Around a month's end, while the month closes and is sent to the
   (embedded) hub: after the restart the month is closed once, settled
   once (one settlement at the hub), and the balance is debited once;
   rounds alternate between a new wallet's default (unlinkable tokens, each
   then redeemed once) and a settlement that names its creators.

Small in the suite; `MECENE_LARGE=1` runs 50 kills over more than 1,000
clicks and 10 month ends (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mecene.settlement import MAX_ALLOCATIONS
from tests.support.constants import battery_size
from tests.support.daemons import Daemon, mecene, start
from tests.support.hubs import TIME_ZONE, faketime, offset_to_month_end

CLIENTS = 4


def _flood(daemon: Daemon, token: str, stop: threading.Event, seed: int) -> dict[str, Any]:
    """Clients sending clicks until `stop`; what was acknowledged and retried."""
    acked: dict[str, str] = {}  # click id -> url, for every 2xx
    sent: list[tuple[str, str]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        for i in range(100_000):
            if stop.is_set():
                return
            with lock:
                retry = sent and rng.random() < 0.2
                cid, url = (
                    rng.choice(sent)
                    if retry
                    else (str(uuid.uuid4()), f"https://s{seed}-{n}.example/{i}")
                )
                if not retry:
                    sent.append((cid, url))
            body = {"id": cid, "url": url, "creator": f"flattr:c{n}"}
            try:
                status, _ = daemon.request("POST", "/clicks", body, token)
            except Exception:  # killed mid-answer: not acknowledged
                return
            if status in (200, 201):
                with lock:
                    acked[cid] = url

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    return {"acked": acked, "sent": sent, "threads": threads}


def _check_clicks(data: Path, acked: dict[str, str]) -> int:
    conn = sqlite3.connect(data / "daemon.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT id, url FROM clicks").fetchall()
    finally:
        conn.close()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a click recorded twice"
    urls = [r[1] for r in rows]
    assert len(urls) == len(set(urls)), "a thing flattred twice in a month"
    stored = dict(rows)
    lost = [cid for cid in acked if cid not in stored]
    assert lost == [], f"{len(lost)} acknowledged clicks lost"
    assert all(stored[cid] == url for cid, url in acked.items())
    return len(ids)


def test_acknowledged_clicks_survive_random_kills(tmp_path: Path) -> None:
    kills = battery_size(5, 50)
    data = tmp_path / "mecene"
    assert mecene(data, "init").returncode == 0
    rng = random.Random(7)
    all_acked: dict[str, str] = {}
    token = None
    for round_ in range(kills):
        daemon = start(data)
        token = token or daemon.pair()
        stop = threading.Event()
        flood = _flood(daemon, token, stop, round_)
        time.sleep(rng.uniform(0.05, 0.6))
        daemon.kill()
        stop.set()
        for t in flood["threads"]:
            t.join(timeout=30)
        all_acked.update(flood["acked"])
        stored = _check_clicks(data, all_acked)
    assert len(all_acked) >= battery_size(100, 1000), len(all_acked)
    # A last restart: a client retrying acknowledged clicks adds nothing.
    daemon = start(data)
    try:
        for cid, url in list(all_acked.items())[-20:]:
            body = {"id": cid, "url": url, "creator": "flattr:c0"}
            status, out = daemon.request("POST", "/clicks", body, token)
            assert status in (200, 409), out  # 200: the same click; 409: its id, another creator
        assert daemon.request("GET", "/status", token=token)[1]["clicks"] == stored
    finally:
        daemon.stop()
    print(f"crash battery: {kills} kills, {len(all_acked)} acknowledged clicks, 0 lost")


def _hub_settlements(data: Path, month: str) -> int:
    conn = sqlite3.connect(data / "hub" / "hub.db")
    try:
        return int(
            conn.execute("SELECT count(*) FROM settlements WHERE month = ?", [month]).fetchone()[0]
        )
    finally:
        conn.close()


def test_a_month_is_closed_and_paid_once_whatever_the_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", "2")
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.5")  # apart from signed calls, briefly
    rounds = battery_size(2, 10)
    rng = random.Random(11)
    for round_ in range(rounds):
        data = tmp_path / f"m{round_}"
        unlinkable = round_ % 2 == 0
        how = [] if unlinkable else ["--unlinkable", "off"]  # on: a new wallet's default
        init = mecene(data, "init", "--budget", "5", "--time-zone", TIME_ZONE, *how)
        assert init.returncode == 0, init.stderr
        offset, month = offset_to_month_end(6)
        boundary = time.monotonic() + 6
        prefix = faketime(offset)
        daemon = start(data, deposit_cents=2000, prefix=prefix)
        token = daemon.pair()
        stop = threading.Event()
        flood = _flood(daemon, token, stop, 1000 + round_)
        # Kill somewhere from just before the month's end to just after it
        # (while the month closes, signs and goes to the hub).
        time.sleep(max(0.0, boundary - time.monotonic() + rng.uniform(-0.5, 1.5)))
        daemon.kill()
        stop.set()
        for t in flood["threads"]:
            t.join(timeout=30)
        _check_clicks(data, flood["acked"])
        daemon = start(data, prefix=prefix)
        try:
            deadline = time.monotonic() + 60
            while True:
                view = daemon.admin("GET", f"/months/{month}")[1]
                if view.get("state") == "settled":
                    break
                assert time.monotonic() < deadline, view
                daemon.admin("POST", "/hub/sync", {})
                time.sleep(0.3)
            assert _hub_settlements(data, month) == 1, "a month paid twice"
            doc = json.loads(view["settlement"]["document"])
            status = daemon.admin("GET", "/status")[1]
            assert status["balance_cents"] == 2000 - doc["spend_cents"], "debited twice or never"
            conn = sqlite3.connect(data / "daemon.sqlite")
            live, creators = conn.execute(
                "SELECT count(*), count(DISTINCT creator) FROM clicks "
                "WHERE month = ? AND undone_at IS NULL",
                [month],
            ).fetchone()
            conn.close()
            assert doc["spend_cents"] == (500 if live else 0)  # the budget, once
            if not unlinkable:
                # The frozen split is of every click kept: one row each, or,
                # beyond what a settlement names, one per creator (private).
                many = live > MAX_ALLOCATIONS
                assert doc["private"] == many
                assert len(doc["allocations"]) == (creators if many else live)
                continue
            # The hub was told the spend alone; the split became tokens, each
            # redeemed once by the embedded hub.
            assert doc["allocations"] == [] and len(view["allocations"]) == creators
            assert sum(a["cents"] for a in view["allocations"]) == doc["spend_cents"]
            while set(view["tokens"] or {}) - {"redeemed"}:
                assert time.monotonic() < deadline, view
                time.sleep(0.3)
                view = daemon.admin("GET", f"/months/{month}")[1]
            hub = sqlite3.connect(data / "hub" / "hub.db")
            spent = hub.execute("SELECT count(*), coalesce(sum(cents), 0) FROM spent_tokens")
            assert spent.fetchone() == (
                view["tokens"]["redeemed"]["tokens"] if live else 0,
                doc["spend_cents"],
            )
            hub.close()
        finally:
            daemon.stop()
