"""The settlement document: canonical JSON signed with the wallet's Ed25519 key.

Canonical means sorted keys, no spaces, UTF-8 (DESIGN.md, "Month lifecycle
and settlement"); the signature covers exactly those bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mecene.encoding import canonical
from mecene.money import CURRENCY

from .budget import Allocation, by_creator

VERSION = 1


def settlement_document(
    account: str,
    month: str,
    spend_cents: int,
    allocations: Sequence[Allocation],
    private: bool,
) -> dict[str, Any]:
    """The document for one month. Private settlements name creators only,
    merged per creator, so the hub learns whom the person paid, not what they read."""
    rows: list[dict[str, Any]]
    if private:
        rows = [{"creator": a.creator, "cents": a.cents} for a in by_creator(allocations)]
    else:
        rows = []
        for a in allocations:
            row: dict[str, Any] = {"creator": a.creator, "cents": a.cents}
            if a.url is not None:
                row["url"] = a.url
            rows.append(row)
    assert sum(r["cents"] for r in rows) == spend_cents
    return {
        "v": VERSION,
        "account": account,
        "month": month,
        "currency": CURRENCY,
        "spend_cents": spend_cents,
        "private": private,
        "allocations": rows,
    }


def sign_document(doc: dict[str, Any], sign: Callable[[bytes], str]) -> tuple[str, str]:
    """The canonical text of `doc` and its signature (base64url)."""
    text = canonical(doc)
    return text.decode(), sign(text)
