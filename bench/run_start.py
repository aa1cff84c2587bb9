"""`scripts/run` started again when nothing changed, against a start that
installs (what every start cost before it kept a stamp of the sources).

Each run is `scripts/run --help` in a virtualenv of its own, so the time is
the script's and the CLI's start, not the daemon's. The first run of a fresh
virtualenv creates it and installs; the baseline is the install alone, made
again with the stamp removed (pip with everything already present: the 16 s
the issue saw); the figure is a run with the stamp in place.

    .venv/bin/python bench/run_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "run"), "--help"],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        env = {**os.environ, "MECENE_VENV": str(venv)}
        env.pop("DISPLAY", None)
        first = timed(env)  # creates the virtualenv and installs
        installs, starts = [], []
        for _ in range(args.runs):
            (venv / ".mecene-installed").unlink()
            installs.append(timed(env))  # pip again: what every start did
            starts.append(timed(env))  # the stamp matches: no pip
    base, fig = statistics.median(installs), statistics.median(starts)
    print(f"first run (virtualenv + install): {first:.1f} s")
    print(f"baseline, a start that runs pip: median {base:.2f} s over {args.runs}")
    print(f"scripts/run start, nothing changed: median {fig:.2f} s over {args.runs}")
    print(f"run start: {fig:.2f} s = {fig / base:.3f} of a start that installs ({base:.2f} s)")


if __name__ == "__main__":
    main()
