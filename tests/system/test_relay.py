"""Through a relay (issue 27, point 5): a real daemon, a real hub, the hub
operator's logging front end and a real Oblivious HTTP relay (HAProxy with
deploy/ohttp-relay.cfg), each its own process. A month ends; its tokens are
issued on the account's own signed calls and redeemed through the relay.
The front end's log, which is what the hub's operator has, shows every
redemption and key fetch coming from the relay's address, with no user
agent, and none from the person's."""

from __future__ import annotations

import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.daemons import free_port, mecene, start
from tests.support.hubs import TIME_ZONE, HubProcess, faketime, offset_to_month_end, wait_for
from tests.support.relay import RELAY_SOURCE, RelayedHub

CREATORS = ["domain:one.example", "domain:two.example", "domain:three.example"]


def test_redemptions_and_key_fetches_reach_the_hub_only_from_the_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MECENE_REDEEM_WINDOW_SECONDS", "4")
    monkeypatch.setenv("MECENE_TOKEN_GAP_SECONDS", "0.5")  # apart from signed calls, briefly
    offset, month = offset_to_month_end(12)
    boundary_at = time.monotonic() + 12
    prefix = faketime(offset)
    hub = HubProcess(tmp_path / "hub", free_port(), prefix).start()
    net = RelayedHub(tmp_path / "net", hub.port).start()
    data = tmp_path / "person"
    try:
        init = mecene(data, "init", "--budget", "5", "--time-zone", TIME_ZONE)
        assert init.returncode == 0, init.stderr
        args = ["--hub", net.front_url, "--relay", net.relay_url]
        daemon = start(data, args=args, prefix=prefix, deposit_cents=2000)
        try:
            key = daemon.pair()
            for n, creator in enumerate(CREATORS):
                body = {
                    "id": str(uuid.uuid4()),
                    "url": f"https://{creator[7:]}/{n}",
                    "creator": creator,
                }
                assert daemon.request("POST", "/clicks", body, key)[0] == 201
            assert boundary_at - time.monotonic() > 1, "too slow to set up before the month ends"

            def tokens() -> dict[str, dict[str, int]]:
                return dict(daemon.admin("GET", f"/months/{month}")[1].get("tokens") or {})

            wait_for(lambda: set(tokens()) == {"redeemed"}, "every token redeemed", timeout=120)
            redeemed = tokens()["redeemed"]["tokens"]
            hub_view = daemon.admin("GET", "/hub")[1]["hub"]
            assert hub_view["tokens_refused"] is None
        finally:
            daemon.stop()
        log = net.lines()
        through = [line for line in log if line.path.startswith("/v1/ohttp")]
        direct = [line for line in log if line.address != RELAY_SOURCE]
        # Every encapsulated request came from the relay, with nothing of the person.
        assert len([line for line in through if line.path == "/v1/ohttp"]) >= redeemed
        assert {line.address for line in through} == {RELAY_SOURCE}
        assert {line.user_agent for line in through} == {"{}"}, through[:3]
        # The person's own address carried the signed calls, and no redemption
        # and no key fetch.
        assert {line.address for line in direct} == {"127.0.0.1"}
        assert any(line.path == "/v1/tokens" for line in direct)
        assert not [
            line
            for line in direct
            if line.path.startswith(("/v1/tokens/redeem", "/v1/token-keys", "/v1/ohttp"))
        ]
        assert not [line for line in log if line.path == "/v1/tokens/redeem"]
        # The hub spent every token, and nothing else came through.
        with sqlite3.connect(tmp_path / "hub" / "hub.db") as db:
            assert db.execute("SELECT count(*) FROM spent_tokens").fetchone()[0] == redeemed
    finally:
        net.stop()
        hub.stop()


def test_the_relay_passes_nothing_but_the_gateway_s_two_resources(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "hub", free_port(), []).start()
    net = RelayedHub(tmp_path / "net", hub.port).start()
    try:
        for method, path in (
            ("GET", "/v1"),
            ("GET", "/v1/account"),
            ("POST", "/v1/tokens/redeem"),
            ("GET", "/v1/token-keys/2026-12"),
            ("GET", "/v1/ohttp"),
        ):
            data = b"{}" if method == "POST" else None
            req = urllib.request.Request(net.relay_url + path, data=data, method=method)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req, timeout=5)
            refused.value.close()
            assert refused.value.code == 404, path
        plain = urllib.request.Request(
            net.relay_url + "/v1/ohttp",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(plain, timeout=5)
        refused.value.close()
        assert refused.value.code == 400
        # Only the start's own check of the relay (its keys) reached the hub.
        relayed = {line.path for line in net.lines() if line.address == RELAY_SOURCE}
        assert relayed == {"/v1/ohttp-keys"}
    finally:
        net.stop()
        hub.stop()
