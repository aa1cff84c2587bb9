"""A month's settlement, from the daemon's split (mecene/settlement.py holds
the document's type: its canonical form, signature and parsing)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mecene.settlement import MAX_ALLOCATIONS, Allocation, Settlement

from . import budget

log = logging.getLogger("mecene.months")


def settlement_document(
    account: str,
    month: str,
    spend_cents: int,
    allocations: Sequence[budget.Allocation],
    private: bool,
    *,
    unlinkable: bool = False,
) -> Settlement:
    """The document for one month. Private settlements name creators only,
    merged per creator, so the hub learns whom the person paid, not what they
    read; an unlinkable one names none (its money goes as tokens)."""
    if unlinkable:
        return Settlement(
            account=account,
            month=month,
            spend_cents=spend_cents,
            private=True,
            allocations=(),
            unlinkable=True,
        )
    if not private and len(allocations) > MAX_ALLOCATIONS:
        # More things than a settlement may name (the hub refuses it, and the
        # month would never settle): the month goes as a private one, its
        # cents merged per creator. The hub learns less; nobody is paid less.
        log.warning(
            "%s: %d things flattred, more than a settlement names (%d): sent per creator",
            month,
            len(allocations),
            MAX_ALLOCATIONS,
        )
        private = True
    rows = budget.by_creator(allocations) if private else allocations
    if len(rows) > MAX_ALLOCATIONS:
        # Still more creators than that: those left with no cent carry no money.
        rows = tuple(a for a in rows if a.cents > 0)
    return Settlement(
        account=account,
        month=month,
        spend_cents=spend_cents,
        private=private,
        allocations=tuple(Allocation(a.creator, a.cents, None if private else a.url) for a in rows),
    )
