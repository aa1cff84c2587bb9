"""What the hub's checks of one settlement cost in Python (issue 31): the
canonical parse of a 20-allocation document (mecene/settlement.py) with
creator keys checked once per key (`keys._canonical_key`'s cache), against
the same parse checking every allocation's key anew (the baseline), in the
same run; and where the parse's time goes.

Documents as the daemons send them: 20 allocations each, over 10,000
creator keys (domains, fediverse accounts, YouTube handles, as in
bench/hub_scale.py's month), each naming a thing's URL.

    .venv/bin/python bench/settlement_parse.py [--documents 4000]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mecene import keys  # noqa: E402
from mecene.settlement import Allocation, Settlement  # noqa: E402

KEYS = 10_000


def documents(count: int) -> list[str]:
    rng = random.Random(31)
    creators = [
        f"domain:site{i}.example"
        if i % 3 == 0
        else f"fediverse:@user{i}@mastodon.social"
        if i % 3 == 1
        else f"youtube:@chan{i:05d}"
        for i in range(KEYS)
    ]
    out = []
    for _ in range(count):
        rows = tuple(
            Allocation(
                rng.choice(creators),
                1,
                f"https://site{rng.randrange(KEYS)}.example/post-{rng.randrange(10**6)}",
            )
            for _ in range(20)
        )
        out.append(Settlement("a" * 43, "2026-10", 20, False, rows).serialise().decode())
    return out


def ms_per_parse(docs: list[str]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for doc in docs:
            Settlement.parse(doc)
        best = min(best, (time.perf_counter() - start) / len(docs) * 1000)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=4000)
    args = parser.parse_args()
    docs = documents(args.documents)
    cached = keys._canonical_key
    ms_per_parse(docs)  # warm: every key checked once
    with_cache = ms_per_parse(docs)
    keys._canonical_key = cached.__wrapped__  # type: ignore[assignment]
    try:
        without = ms_per_parse(docs)
        profile = cProfile.Profile()
        profile.runcall(lambda: [Settlement.parse(d) for d in docs])
    finally:
        keys._canonical_key = cached
    total = pstats.Stats(profile).total_tt
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    print("where an uncached parse's time goes (cumulative share):")
    for name in ("thing_url", "creator_key", "_load", "is_text"):
        spent = max((v[3] for k, v in stats.items() if k[2] == name), default=0.0)
        print(f"  {name:12s} {spent / total:5.0%}")
    print(
        f"settlement parse: {with_cache:.3f} ms with keys checked once per key, "
        f"{without:.3f} ms checking every allocation's key (baseline) "
        f"= {with_cache / without:.2f} of the baseline"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
