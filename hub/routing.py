"""Where the money of an allocation goes: pure, without SQL.

Every path that moves an allocation asks here, with what the database says
(who owns each key, who gave in the month, who is a non-profit), and gets
back the ledger legs and the allocation rows to write:

- `route`: a direct transfer's allocation when the hub accepts it, or
  accepted settlements' pending allocations in a payout run (hub/payout.py):
  to the key's owner less the fee (credited), withheld for an
  owner who has not given this month ("to receive, you must give"), or in
  escrow for a key nobody has proved yet;
- `release`: allocations already stored, withheld or in escrow, now going to
  their owner: credited, or (escrow only) withheld again until the owner gives.

**One fee rounding rule.** The 10 % fee (none for a non-profit) is rounded
once per *unit of payment* — one settlement's rows for one creator key,
(giver, month, key), or one direct transfer — and spread over the unit's rows
by largest remainder. `route` and `release` both group by `fee_unit`, so the
same flattrs cost the same fee whether they were credited at once, withheld
and released, or held in escrow and claimed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mecene import money
from mecene.money import largest_remainder

from .accounts import Creator, Escrow, Fees, LedgerAccount, Withheld

FeeUnit = tuple[str, str, str, str | None]  # (giver, month, creator key, transfer id)


# The giver of a redeemed token's allocation: nobody (hub/tokens.py). Its
# fee unit is the token itself (`transfer_id` holds the token's spent id).
NO_GIVER = ""


@dataclass(frozen=True)
class Piece:
    """One allocation: new (`id` None) or stored (its row id)."""

    giver: str
    month: str
    creator: str
    cents: int
    url: str | None = None
    transfer_id: str | None = None
    id: int | None = None

    @property
    def fee_unit(self) -> FeeUnit:
        return (self.giver, self.month, self.creator, self.transfer_id)


@dataclass
class Routed:
    """Ledger legs to post (the caller adds where the money comes from when it
    is new), rows to insert (`route`) or (id, values) to update (`release`)."""

    legs: defaultdict[LedgerAccount, int] = field(default_factory=lambda: defaultdict(int))
    rows: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    credited_cents: int = 0
    held_cents: int = 0

    @property
    def gross_cents(self) -> int:
        return self.credited_cents + self.held_cents


def fee_units(pieces: Iterable[Piece]) -> dict[FeeUnit, list[Piece]]:
    """Pieces grouped by the unit their fee is rounded in, in first-seen order."""
    units: dict[FeeUnit, list[Piece]] = {}
    for p in pieces:
        units.setdefault(p.fee_unit, []).append(p)
    return units


def unit_fees(cents: Sequence[int], *, nonprofit: bool) -> list[int]:
    """One unit's fee, rounded once, spread over its rows in proportion to their cents."""
    fee = money.creator_fee_cents(sum(cents), nonprofit=nonprofit)
    if fee == 0:
        return [0] * len(cents)
    return largest_remainder(fee, list(cents))


def route(
    pieces: Sequence[Piece],
    *,
    owners: Mapping[str, str | None],
    gave: Mapping[str, bool],
    nonprofit: Mapping[str, bool],
    must_give: bool,
    now: int,
) -> Routed:
    """Allocations of one month routed now: new ones (a transfer) as rows to
    insert, stored ones (pending, from accepted settlements) as updates."""
    out = Routed()
    for unit, group in fee_units(sorted(pieces, key=lambda p: p.creator)).items():
        giver, month, key, _ = unit
        owner = owners[key]
        cents = [p.cents for p in group]
        total = sum(cents)
        fees: list[int | None] = [None] * len(group)
        if owner is None:
            state = "escrow"
            out.legs[Escrow(key)] += total
            out.held_cents += total
        elif must_give and not gave[owner]:
            state = "withheld"
            out.legs[Withheld(owner, month)] += total
            out.held_cents += total
        else:
            state = "credited"
            shares = unit_fees(cents, nonprofit=nonprofit[owner])
            fees = list(shares)
            out.legs[Creator(owner)] += total - sum(shares)
            out.legs[Fees.of(giver)] += sum(shares)
            out.credited_cents += total
        for p, fee_cents in zip(group, fees, strict=True):
            routed = {
                "state": state,
                "recipient": owner,
                "fee_cents": fee_cents,
                "settled_at": now if state == "credited" else None,
                "withheld_month": month if state == "withheld" else None,
            }
            if p.id is not None:  # stored, pending: updated where it is
                out.updates.append((p.id, routed))
                continue
            out.rows.append(
                {
                    "account": giver,
                    "month": month,
                    "creator": key,
                    "url": p.url,
                    "cents": p.cents,
                    "transfer_id": p.transfer_id,
                    **routed,
                }
            )
    return out


def release(
    pieces: Sequence[Piece],
    *,
    source: Withheld | Escrow,
    owner: str,
    gave: bool,
    nonprofit: bool,
    must_give: bool,
    month: str,
    now: int,
) -> Routed:
    """Stored allocations leaving `source` for `owner` now, in `month` (the
    hub's month of release). Withheld money is released because its owner gave;
    escrow is withheld again, under `month`, if the owner has not given in it."""
    out = Routed()
    gross = sum(p.cents for p in pieces)
    out.legs[source] -= gross
    if must_give and not gave:
        out.legs[Withheld(owner, month)] += gross
        out.held_cents = gross
        values = {"state": "withheld", "recipient": owner, "withheld_month": month}
        out.updates = [(_id(p), values) for p in pieces]
        return out
    for unit, group in fee_units(pieces).items():
        shares = unit_fees([p.cents for p in group], nonprofit=nonprofit)
        total = sum(p.cents for p in group)
        out.legs[Creator(owner)] += total - sum(shares)
        out.legs[Fees.of(unit[0])] += sum(shares)
        for p, fee_cents in zip(group, shares, strict=True):
            out.updates.append(
                (
                    _id(p),
                    {
                        "state": "credited",
                        "recipient": owner,
                        "fee_cents": fee_cents,
                        "settled_at": now,
                    },
                )
            )
    out.credited_cents = gross
    return out


def _id(piece: Piece) -> int:
    if piece.id is None:
        raise ValueError("only stored allocations are released")
    return piece.id
