"""What the daemon's check of its files at start costs (issue 26): SQLite's
`integrity_check` of `daemon.sqlite`, against opening the same file without
it, in the same run, on a database the size of a heavy year.

The database is built by the daemon's own migrations and filled with N
flattrs over 12 months (the clicks table and its indexes, as the daemon
writes them); each round opens it cold (a new connection) the daemon's way
(`store.checked_connection`: pragmas, integrity_check, the migrations'
record) and then as before (`store.connect` and the migrations' record
alone). The figure is the first, the baseline the second.

    .venv/bin/python bench/start_check.py [--clicks 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlite_utils import Database  # noqa: E402

from daemon import store  # noqa: E402


def build(path: Path, clicks: int) -> None:
    db = Database(store.connect(path), execute_plugins=False)
    store.migrations.apply(db)
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    db["months"].insert_all({"month": m, "state": "open"} for m in months)
    rows = (
        {
            "id": str(uuid.uuid4()),
            "month": months[i % 12],
            "url": f"https://blog{i % 997}.example.org/post/{i}",
            "title": f"Post {i}",
            "creator": f"domain:blog{i % 997}.example.org",
            "creators": "[]",
            "weight": 1,
            "auto": 0,
            "created_at": "2026-01-01T00:00:00.000000Z",
        }
        for i in range(clicks)
    )
    db["clicks"].insert_all(rows, batch_size=5000)
    db.conn.close()


def timed(open_it: object, path: Path) -> float:
    start = time.perf_counter()
    conn = open_it(path)  # type: ignore[operator]
    store.migrations.applied(Database(conn, execute_plugins=False))
    conn.close()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "daemon.sqlite"
        build(path, args.clicks)
        size = path.stat().st_size
        checked, plain = [], []
        for _ in range(args.rounds):
            checked.append(timed(store.checked_connection, path))
            plain.append(timed(store.connect, path))
    c, p = statistics.median(checked), statistics.median(plain)
    print(f"daemon.sqlite: {args.clicks:,} flattrs, {size / 1e6:.1f} MB")
    print(f"baseline: opened without a check     median {p:8.1f} ms")
    print(f"opened with integrity_check (start)  median {c:8.1f} ms   = {c / p:.0f}x the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
