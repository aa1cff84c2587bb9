"""Money as a person reads and types it: the one place amounts are written
out in Python (the CLI, the tray, logs, the hub's messages and its CLI).
Integer cents in, text out; no float on the way (`-5` is "-0.05 €")."""

from __future__ import annotations

import re

_AMOUNT = re.compile(r"\s*(\d{1,7})(?:[.,](\d{1,2}))?\s*(?:€|EUR)?\s*")


def euros(cents: int) -> str:
    """`1234` → "12.34 €", `-5` → "-0.05 €"."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise TypeError(f"an amount is integer cents, not {cents!r}")
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d} €"


def parse_euros(text: str) -> int | None:
    """ "5", "4.50", "4,5 €" → cents; None if `text` is not an amount."""
    m = _AMOUNT.fullmatch(text)
    if not m:
        return None
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
