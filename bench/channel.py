"""The browsers' channel: what starting the native messaging host costs on
the first message after the worker wakes, against a message on an open port
(issue 25), in Chromium and Firefox ESR, in the same run.

A real daemon; each browser with the extension loaded and the host's
manifests written by `mecene browser install` into a throwaway HOME. In the
extension's worker, N times: close the port (`MeceneDaemon.disconnect()`,
as when the worker stopped), then time `GET /status` (the browser starts a
new host, which connects to the daemon's socket), then time the same
request again on the open port. The figure is the first; the baseline the
second, and the ratio says what starting a host adds.

    .venv/bin/python bench/channel.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright import sync_api  # noqa: E402

from tests.support.daemons import mecene, pair_extension, start  # noqa: E402
from tests.support.people import person_in  # noqa: E402

TIMED = (
    "(async () => {{ const key = await MeceneStorage.getToken(); const out = [];"
    " for (let i = 0; i < {rounds}; i++) {{"
    "  MeceneDaemon.disconnect();"
    "  let t = performance.now(); await MeceneDaemon.call('GET', '/status', undefined, key);"
    "  const cold = performance.now() - t;"
    "  t = performance.now(); await MeceneDaemon.call('GET', '/status', undefined, key);"
    "  out.push([cold, performance.now() - t]); }}"
    " return out; }})()"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure(browser: str, work: Path, data: Path, daemon: Any, rounds: int) -> list[list[float]]:
    home = work / f"home-{browser}"
    home.mkdir()
    assert mecene(data, "browser", "install", home=home).returncode == 0
    with person_in(browser, sync_api, work / f"profile-{browser}", [], home) as person:
        pair_extension(person.worker, daemon, person.client)
        person.worker(TIMED.format(rounds=2))  # warm: the worker's code, the daemon's caches
        return list(person.worker(TIMED.format(rounds=rounds)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--browsers", default="chromium,firefox")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "mecene"
        assert mecene(data, "init").returncode == 0
        daemon = start(data)
        try:
            for browser in args.browsers.split(","):
                results[browser] = measure(browser, work, data, daemon, args.rounds)
        finally:
            daemon.stop()
    for browser, pairs in results.items():
        cold = [c for c, _w in pairs]
        warm = [w for _c, w in pairs]
        print(
            f"{browser}: a message on an open port (baseline)        p50 "
            f"{percentile(warm, 0.5):6.1f} ms   p99 {percentile(warm, 0.99):6.1f} ms"
        )
        print(
            f"{browser}: the first message, the host started for it  p50 "
            f"{percentile(cold, 0.5):6.1f} ms   p99 {percentile(cold, 0.99):6.1f} ms   "
            f"({len(pairs)} rounds)"
        )
        print(
            f"{browser}: ratio at p50: {percentile(cold, 0.5) / percentile(warm, 0.5):.1f}x "
            "(starting the host, once per worker wake)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
