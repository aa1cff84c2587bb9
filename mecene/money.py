"""The hub's money rules, pure: fees on integers, rounded half up to the cent.

DESIGN.md, "The money rules": 10 % of what a creator receives (0 % for
non-profits); deposit fees by method, shown before the person confirms.

>>> creator_fee_cents(1005, nonprofit=False)
101
>>> deposit_fee_cents("card", 2000)
70
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .amounts import euros

CURRENCY = "EUR"
CREATOR_FEE_PERCENT = 10
MIN_DEPOSIT_CENTS = 200
MAX_DEPOSIT_CENTS = 100_000
MIN_WITHDRAWAL_CENTS = 1_000
MIN_GIVING_CENTS = 200  # "to receive, you must give": at least 2 € given that month
# A budget is at least what a month must give for its person to receive.
MIN_BUDGET_CENTS = MIN_GIVING_CENTS
# The largest amount a setting holds (a budget, a cap): one million euros,
# far above any budget and far below an integer's overflow anywhere.
MAX_SETTING_CENTS = 100_000_000
# A direct transfer: a one-off amount to one creator, outside the month's split.
MIN_TRANSFER_CENTS = 100
MAX_TRANSFER_CENTS = 100_000


class OutOfBounds(ValueError):
    """An amount outside what the money rules allow; its text says the bounds."""


def transfer_cents(cents: int) -> int:
    """A direct transfer's amount, checked against the one pair of bounds
    every side uses (the daemon's API, its core, the hub's transfers and its
    token gifts); OutOfBounds says them.

    >>> transfer_cents(100)
    100
    >>> transfer_cents(99)
    Traceback (most recent call last):
    ...
    mecene.money.OutOfBounds: a transfer is 1.00 € to 1000.00 €
    """
    if not MIN_TRANSFER_CENTS <= cents <= MAX_TRANSFER_CENTS:
        raise OutOfBounds(
            f"a transfer is {euros(MIN_TRANSFER_CENTS)} to {euros(MAX_TRANSFER_CENTS)}"
        )
    return cents


def deposit_cents(cents: int) -> int:
    """A deposit's amount (what reaches the balance), within its bounds."""
    if not MIN_DEPOSIT_CENTS <= cents <= MAX_DEPOSIT_CENTS:
        raise OutOfBounds(f"a deposit is {euros(MIN_DEPOSIT_CENTS)} to {euros(MAX_DEPOSIT_CENTS)}")
    return cents


@dataclass(frozen=True)
class DepositMethod:
    """A fixed part plus a proportion, in parts per `per`."""

    name: str
    label: str
    fixed_cents: int
    parts: int
    per: int


METHODS = {
    m.name: m
    for m in (
        DepositMethod("bank", "bank transfer", 30, 3, 1000),  # 30 ct + 0.3 %
        DepositMethod("card", "card", 30, 2, 100),  # 30 ct + 2 %
        DepositMethod("paypal", "PayPal", 35, 34, 1000),  # 35 ct + 3.4 %
    )
}


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves up (both ≥ 0).

    >>> round_half_up(5, 10), round_half_up(4, 10), round_half_up(15, 10)
    (1, 0, 2)
    """
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up takes a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def creator_fee_cents(gross_cents: int, *, nonprofit: bool) -> int:
    """The hub's fee on money a creator receives: 10 %, none for non-profits."""
    if nonprofit:
        return 0
    return round_half_up(gross_cents * CREATOR_FEE_PERCENT, 100)


def deposit_fee_cents(method: str, amount_cents: int) -> int:
    """The payment provider's fee for depositing `amount_cents` (which is what
    reaches the balance; the person pays the amount plus this fee)."""
    m = METHODS[method]
    return m.fixed_cents + round_half_up(amount_cents * m.parts, m.per)


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Share `total` in proportion to `weights`, exactly, by largest remainder.

    Ties between equal remainders go to the earlier entry: callers pass the
    weights in click order (time, then id).

    >>> largest_remainder(100, [1, 1, 1])
    [34, 33, 33]
    """
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError("weights must add up to more than zero")
    shares = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    leftover = total - sum(shares)
    # Sort indices by remainder, largest first; Python's sort is stable, so
    # equal remainders keep click order.
    by_remainder = sorted(range(len(weights)), key=lambda i: -remainders[i])
    for i in by_remainder[:leftover]:
        shares[i] += 1
    return shares
