"""What the Oblivious HTTP relay adds to a redemption (issue 27, point 5).

A real hub process behind the operator's front end and a real relay (HAProxy
with deploy/ohttp-relay.cfg; tests/support/relay.py), as in
tests/system/test_relay.py. The same request, a token redemption the hub
refuses (a token of no key of its: nothing is spent, and the hub's share of
the time is the same both ways), is sent N times each way, interleaved, each
on a fresh connection as the daemon sends it:

- baseline: straight to the hub's front end (`fresh_request`, no relay);
- relayed: encapsulated (mecene/ohttp.py) and posted to the relay.

Prints the p50 and p90 of each and their ratio, in one run.

    .venv/bin/python bench/relay.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.unlinkable.anonymous import AnonymousPath, fresh_request  # noqa: E402
from mecene import tokens, tokenwire  # noqa: E402
from tests.support.constants import free_port  # noqa: E402
from tests.support.hubs import HubProcess  # noqa: E402
from tests.support.relay import RelayedHub  # noqa: E402


class _Link:
    def __init__(self, base_url: str, hub_key: str) -> None:
        self.base_url, self._hub_key = base_url, hub_key

    async def hub_key(self) -> str:
        return self._hub_key


def _redemption() -> dict[str, object]:
    token = tokens.Token(
        nonce=secrets.token_bytes(32), key_id=secrets.token_bytes(32), authenticator=bytes(256)
    )
    return tokenwire.build_redemption(
        tokenwire.Redemption(token, secrets.token_bytes(32), "domain:example.org")
    )


async def _run(front: str, relay: str, rounds: int) -> tuple[list[float], list[float]]:
    status, info = await fresh_request("GET", front + "/v1")
    assert status == 200, info
    link = _Link(front, info["public_key"])
    relayed = AnonymousPath(link, relay)  # type: ignore[arg-type]
    await relayed.gateway_config()  # fetched once per daemon run
    direct_times, relayed_times = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        status, out = await fresh_request("POST", front + "/v1/tokens/redeem", _redemption())
        direct_times.append(time.perf_counter() - t)
        assert status == 400, (status, out)
        t = time.perf_counter()
        status, out = await relayed.request("POST", "/v1/tokens/redeem", _redemption())
        relayed_times.append(time.perf_counter() - t)
        assert status == 400, (status, out)
    return direct_times, relayed_times


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(Path(tmp) / "hub", free_port(), []).start()
        net = RelayedHub(Path(tmp) / "net", hub.port).start()
        try:
            direct, relayed = asyncio.run(_run(net.front_url, net.relay_url, args.rounds))
        finally:
            net.stop()
            hub.stop()
    print(f"redemption, {args.rounds} rounds each, interleaved, fresh connections")
    print(f"  baseline (no relay): p50 {_p(direct, 0.5):.2f} ms, p90 {_p(direct, 0.9):.2f} ms")
    print(f"  through the relay:   p50 {_p(relayed, 0.5):.2f} ms, p90 {_p(relayed, 0.9):.2f} ms")
    print(
        f"  relayed / baseline:  p50 {_p(relayed, 0.5) / _p(direct, 0.5):.2f}x, "
        f"added {_p(relayed, 0.5) - _p(direct, 0.5):.2f} ms"
    )


if __name__ == "__main__":
    main()
