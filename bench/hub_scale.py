"""The hub at scale: the first-of-the-month burst through a real load balancer.

Two `mecene-hub serve` processes on one PostgreSQL behind Debian's HAProxy
(deploy/haproxy.cfg); accounts opened and funded before last month ended
(seeded straight into the database); each settles last month once, 20
allocations each, 64 clients at a time, resending what was not acknowledged.
Compared with the raw Ed25519 verification rate on one core, in the same run
(each settlement costs the hub two verifications and one signature).

    .venv/bin/python bench/hub_scale.py [--accounts 20000] [--clients 64]
        [--kill]      SIGKILL a process at 10, 35, 60 and 85 % of the burst
        [--profile]   sample one hub process with py-spy during the burst

The last line is the figure: `hub: N settlements/s on postgresql with K
processes = R of raw verify`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from tests.support.hubs import (  # noqa: E402  # noqa: E402
    PG_SERVER,
    HubCluster,
    Killer,
    books,
    burst,
    seed,
    settlement_of,
    verify_rate,
)


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed (pip install py-spy): no profile")
        return None
    argv = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds))]
    argv += ["--rate", "200", "--format", "raw", "--nonblocking", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pids_of(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def summarise(raw: Path, top: int = 40) -> None:
    """Where one hub process spent its samples (inclusive), by function."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        names = set()
        for frame in stack.split(";"):
            m = re.match(r"(.*?) \((.*?):\d+\)", frame)
            if m:
                names.add(f"{m.group(1)} ({Path(m.group(2)).name})")
        for name in names:
            inclusive[name] += int(n)
        last = re.match(r"(.*?) \((.*?):\d+\)", stack.split(";")[-1])
        if last:
            own[f"{last.group(1)} ({Path(last.group(2)).name})"] += int(n)
    # The frames every sample shares (the event loop, the process) say nothing.
    shared = {name for name, n in inclusive.items() if n > 0.7 * total}
    print(f"profile of one hub process during the burst ({total} samples), inclusive:")
    for name, n in [(k, v) for k, v in inclusive.most_common() if k not in shared][:top]:
        print(f"  {100 * n / total:5.1f} %  {name}")
    print("  by own time:")
    for name, n in own.most_common(top // 2):
        print(f"  {100 * n / total:5.1f} %  {name}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    raw = verify_rate()
    print(f"raw Ed25519 verifications    {raw:8.0f} /s   (one core, baseline)")
    name = f"mecene_scale_{random.getrandbits(40):010x}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    db = f"{PG_SERVER}/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="mecene-scale-"))
    cluster = HubCluster(db, tmp)
    try:
        assert cluster.cli("migrate").returncode == 0
        began = time.perf_counter()
        world = asyncio.run(seed(db, people=args.accounts))
        rng = random.Random(1)
        bodies = [(p, settlement_of(p, world, rng)) for p in world.people]
        print(
            f"seeded {args.accounts:,} funded accounts and signed their settlements "
            f"in {time.perf_counter() - began:.1f} s"
        )
        cluster.start()
        killer = Killer(cluster, len(bodies)) if args.kill else Killer(cluster, 0, ())
        spy = None
        out = tmp / "profile.txt"
        if args.profile and cluster.procs[0] is not None:
            spy = profile(cluster.procs[0].pid, max(5.0, len(bodies) / 2000), out)
        groups = {
            "hubs": [p.pid for p in cluster.procs if p is not None],
            "postgres": pids_of("postgres"),
            "haproxy": [cluster.haproxy.pid] if cluster.haproxy is not None else [],
        }
        before = {k: cpu_seconds(v) for k, v in groups.items()}
        before["load"] = time.process_time()
        with killer:
            stats = asyncio.run(
                burst(cluster.url, bodies, concurrency=args.clients, on_tick=killer.tick)
            )
            load = time.process_time()
        # Drained: every settlement acknowledged; then the payout runs. The
        # CPU is read once they have routed every allocation: what is left
        # for them after the burst is part of a settlement's cost.
        routed_at = time.perf_counter()
        deadline = routed_at + 600
        while (held := asyncio.run(books(db)))["pending"] and time.perf_counter() < deadline:
            time.sleep(0.5)
        routed = time.perf_counter() - routed_at
        spent = {k: cpu_seconds(v) for k, v in groups.items()}
        spent["load"] = load
        check = json.loads(cluster.cli("check").stdout)
        rate = stats.acknowledged / stats.elapsed
        lat = sorted(stats.latencies)
        p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
        print(
            f"burst: {stats.acknowledged:,} settlements drained in {stats.elapsed:.1f} s, "
            f"{args.clients} clients; latency p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms"
        )
        print(
            f"payout runs: every allocation routed {routed:.1f} s after the burst "
            f"(pending left: {held['pending']}); books: {check}"
        )
        if not args.kill:  # a killed process takes its CPU time with it
            per = {k: 1000 * (spent[k] - before[k]) / stats.acknowledged for k in spent}
            cores = os.cpu_count() or 1
            print(
                "CPU per settlement: "
                + ", ".join(f"{k} {v:.2f} ms" for k, v in per.items())
                + f"; {sum(per.values()):.2f} ms in all, on {cores} cores "
                f"(at most {1000 * cores / sum(per.values()):.0f} settlements/s here)"
            )
        if args.kill:
            lost = len(bodies) - held["settlements"]
            twice = held["settlement_entries"] - held["settlements"]
            print(
                f"kill: {cluster.kills} SIGKILLs; {len(bodies):,} settlements, "
                f"{stats.acknowledged:,} acknowledged, {stats.resent:,} resent, "
                f"{stats.accepted:,} accepted, {stats.repeated:,} answered again with "
                f"their receipt, duplicated {twice}, lost {lost}"
            )
        if spy is not None:
            spy.wait(120)
            if out.exists():
                summarise(out)
        print(
            f"hub: {rate:.0f} settlements/s on postgresql with 2 processes = "
            f"{rate / raw:.3f} of raw verify"
        )
    finally:
        cluster.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
