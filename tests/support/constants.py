"""Constants the tests share: the passphrase of test wallets, the daemon's
port and Host for in-process apps, the extension's Origin, how large the
batteries run; and the one way they pick a port (`free_port`)."""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

PASSPHRASE = "correct horse battery"
PORT = 8737
HOST = f"127.0.0.1:{PORT}"
EXTENSION_ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"

# The reliability batteries run small in the suite and large with
# MECENE_LARGE=1 (docs/RELIABILITY.md: `MECENE_LARGE=1 scripts/test -k battery`).
LARGE = os.environ.get("MECENE_LARGE") == "1"


def battery_size(small: int, large: int) -> int:
    return large if LARGE else small


def _ephemeral_range() -> range:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a process to bind next.

    Not one the kernel picks (`bind(0)`): those come from the ephemeral range,
    where any outgoing connection (the browser's, a client's) may take the
    same port before the process binds it ("address already in use"). Ports
    outside that range (from 20000 up) are only ever bound on purpose, and
    this process never hands the same one out twice.
    """
    ephemeral = _ephemeral_range()
    candidates = [p for p in range(20000, 65536) if p not in ephemeral and p not in _HANDED_OUT]
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for port in rng.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port on 127.0.0.1 outside the ephemeral range")
