"""A month's settlement, from the daemon's split (mecene/settlement.py holds
the document's type: its canonical form, signature and parsing)."""

from __future__ import annotations

from collections.abc import Sequence

from mecene.settlement import Allocation, Settlement

from . import budget


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
    rows = budget.by_creator(allocations) if private else allocations
    return Settlement(
        account=account,
        month=month,
        spend_cents=spend_cents,
        private=private,
        allocations=tuple(Allocation(a.creator, a.cents, None if private else a.url) for a in rows),
    )
