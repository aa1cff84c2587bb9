"""Constants the tests share: the passphrase of test wallets, the daemon's
port and Host for in-process apps, the extension's Origin, and how large the
batteries run."""

from __future__ import annotations

import os

PASSPHRASE = "correct horse battery"
PORT = 8737
HOST = f"127.0.0.1:{PORT}"
EXTENSION_ORIGIN = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"

# The reliability batteries run small in the suite and large with
# MECENE_LARGE=1 (docs/RELIABILITY.md: `MECENE_LARGE=1 scripts/test -k battery`).
LARGE = os.environ.get("MECENE_LARGE") == "1"


def battery_size(small: int, large: int) -> int:
    return large if LARGE else small
