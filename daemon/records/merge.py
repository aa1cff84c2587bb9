"""One wallet on several computers: the one rule that merges their flattrs
(pure: no database; DESIGN.md, "Devices"; tests/daemon/test_devices.py is
its table).

Every computer keeps the flattrs of its months not yet settled in the
wallet's state record (daemon/records/sql.py), undone ones too, and takes in
the others'. Two flattrs of one thing in one month are one flattr, whichever
computer made them; what becomes of that thing is decided by one rule:

    the latest action wins — a flattr (its `created_at`) or its Undo (its
    `undone_at`), by the clock of the computer that did it; at the same
    moment, the flattr with the smaller id.

So a thing flattred on two computers is flattred once (the later flattr is
kept: both computers keep the same one); Undo on one computer undoes it on
every other unless it was flattred again after; and every computer that has
seen the same flattrs comes to the same month, in whatever order they came.
The same rule covers settings (the later change of each setting wins) and
subscriptions (the later change of each subscription wins: a cancel after an
extension cancels it, an extension after a cancel brings it back).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

# Bytes of SHA-256 kept per thing in a closed month's `things`: a collision
# between two things of one month is out of reach (2**-64 per pair).
DIGEST_HEX = 16


def thing(url: str | None, creator: str) -> str:
    """What a flattr is of: its URL, or its creator for a flattr with none
    (a creator subscription)."""
    return url if url else f"creator:{creator}"


def thing_digest(url: str | None, creator: str) -> str:
    return hashlib.sha256(thing(url, creator).encode()).hexdigest()[:DIGEST_HEX]


def last_action(click: Mapping[str, Any]) -> str:
    """When the flattr last changed: its Undo, or else its making."""
    return str(click.get("undone_at") or click["created_at"])


def wins(new: Mapping[str, Any], kept: Mapping[str, Any]) -> bool:
    """Whether `new` replaces `kept`, two flattrs of one thing in one month."""
    if new["id"] == kept["id"]:
        # The same flattr: an Undo is final for it (flattring again makes a
        # new one), so the copy that is undone wins.
        return bool(new.get("undone_at")) and not kept.get("undone_at")
    a, b = last_action(new), last_action(kept)
    if a != b:
        return a > b
    return str(new["id"]) < str(kept["id"])


def newest(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The flattr that stands for its thing among `rows` (one thing, one month)."""
    best: Mapping[str, Any] | None = None
    for row in rows:
        if best is None or wins(row, best):
            best = row
    return best


def changed_later(new: Mapping[str, Any], kept: Mapping[str, Any]) -> bool:
    """For settings and subscriptions: whether `new` was changed after `kept`
    (their `changed_at`; at the same moment, the greater value's JSON, so
    every computer picks the same)."""
    a, b = str(new.get("changed_at") or ""), str(kept.get("changed_at") or "")
    if a != b:
        return a > b
    return repr(sorted(new.items())) > repr(sorted(kept.items()))
