"""The daemon at rest: resident memory after start, CPU and wake-ups while idle.

Compared in the same run with a bare aiohttp server process (the same one
bench/click_throughput.py uses). CPU time and context switches are summed
over every thread from /proc; a daemon that polls would show wake-ups.

    .venv/bin/python bench/idle.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from click_throughput import BARE_SERVER  # noqa: E402

from tests.support.daemons import free_port, mecene, start  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_and_switches(pid: int) -> tuple[float, int]:
    """CPU seconds and context switches, summed over the process's threads."""
    cpu, switches = 0.0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(stat[11]) + int(stat[12])) / TICK
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    return cpu, switches


def measure(name: str, pid: int, seconds: float) -> None:
    time.sleep(2.0)  # let start-up settle
    rss = rss_kib(pid)
    cpu0, sw0 = cpu_and_switches(pid)
    time.sleep(seconds)
    cpu1, sw1 = cpu_and_switches(pid)
    print(
        f"{name:<22} RSS {rss / 1024:6.1f} MiB   idle CPU {(cpu1 - cpu0) / seconds * 100:5.2f} %"
        f"   wake-ups {(sw1 - sw0) / seconds:6.2f}/s   over {seconds:.0f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mecene"
        assert mecene(data, "init", "--budget", "5").returncode == 0
        daemon = start(data)
        daemon.pair()  # a paired, unlocked daemon, as a person leaves it
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(free_port())])
        try:
            measure("bare aiohttp process", bare.pid, args.seconds)
            measure("Mécène daemon", daemon.proc.pid, args.seconds)
        finally:
            bare.terminate()
            bare.wait(timeout=10)
            daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
