"""Month close time for 100 and for 10,000 clicks.

A real SQLite file and the daemon's own Service: the month's clicks are
recorded, the clock moves into the next month, and `roll_months()` closes the
month (places subscription clicks, splits the spend, builds the canonical
document, signs it, commits). The close job runs on the event loop (the store
runs jobs there and only COMMITs in a thread), so the time the loop is held is
reported too: the daemon answers nothing else meanwhile.

    .venv/bin/python bench/month_close.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.service import Service  # noqa: E402
from daemon.store import Store  # noqa: E402
from daemon.wallet import TEST_KDF, Settings, Wallet  # noqa: E402
from mecene.time import FrozenClock, timestamp  # noqa: E402


async def close_once(clicks: int) -> tuple[float, float]:
    """Seconds to close a month of `clicks` clicks, and the longest loop stall."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        wallet = Wallet.create(d / "w", "passphrase!", Settings(time_zone="UTC"), kdf=TEST_KDF)
        clock = FrozenClock(dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
        store = Store(d / "daemon.sqlite")
        store.open()
        service = Service(store, clock, d / "w", wallet)
        await service.start()
        rows = [
            (
                str(uuid.uuid4()),
                f"https://site{i % 97}.example/post/{i}",
                f"flattr:creator{i % 211}",
                1 + i % 5,
                timestamp(clock.now() + dt.timedelta(seconds=i)),
            )
            for i in range(clicks)
        ]

        def insert(db):  # type: ignore[no-untyped-def]
            db.conn.executemany(
                "INSERT INTO clicks (id, month, url, creator, creators, weight, auto, created_at) "
                "VALUES (?, '2026-10', ?, ?, '[]', ?, 0, ?)",
                rows,
            )

        await store.write(insert)
        clock.set(dt.datetime(2026, 11, 1, 0, 0, 1, tzinfo=dt.UTC))

        stall = 0.0
        ticking = True

        async def ticker() -> None:
            nonlocal stall
            last = time.perf_counter()
            while ticking:
                await asyncio.sleep(0)
                now = time.perf_counter()
                stall = max(stall, now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        closed = await service.months.roll()
        elapsed = time.perf_counter() - t0
        ticking = False
        await tick
        assert closed == ["2026-10"], closed
        month = await service.months.view("2026-10")
        doc = json.loads(month["settlement"]["document"])
        assert len(doc["allocations"]) == clicks
        assert sum(a["cents"] for a in doc["allocations"]) == doc["spend_cents"]
        await store.close()
        return elapsed, stall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for n in (100, 10_000):
        runs = [asyncio.run(close_once(n)) for _ in range(args.repeat)]
        close = statistics.median(r[0] for r in runs)
        stall = statistics.median(r[1] for r in runs)
        results[n] = close
        print(
            f"close a month of {n:>6} clicks   median {close * 1000:8.1f} ms"
            f"   loop held {stall * 1000:7.1f} ms   ({close / n * 1e6:6.1f} µs a click)"
        )
    ratio = results[10_000] / results[100]
    print(f"10,000 clicks take {ratio:.0f}× as long as 100 (100× more clicks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
