"""The month's budget arithmetic: pure functions of (rules, clicks, balance).

Nothing here reads the clock, the database or the network, and no float
touches money: every amount is an integer number of cents.

>>> rules = BudgetRules(budget_cents=500)
>>> clicks = [ClickWeight("a", "2026-10-01T10:00:00.000000Z", "flattr:x", "https://x/1", 1),
...           ClickWeight("b", "2026-10-02T10:00:00.000000Z", "flattr:y", "https://y/1", 2)]
>>> [a.cents for a in split_budget(rules, clicks, None).allocations]
[167, 333]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mecene.amounts import euros
from mecene.money import MIN_BUDGET_CENTS, largest_remainder

MAX_WEIGHT = 5


@dataclass(frozen=True)
class BudgetRules:
    """What the person chose: the monthly budget and its optional refinements."""

    budget_cents: int
    min_click_cents: int | None = None
    cap_cents: int | None = None
    charity: str | None = None

    def __post_init__(self) -> None:
        check_rules(self)


def check_rules(rules: BudgetRules) -> None:
    """Raise ValueError unless the rules are ones DESIGN.md allows."""
    if not _is_int(rules.budget_cents) or rules.budget_cents < MIN_BUDGET_CENTS:
        raise ValueError(f"the budget must be at least {euros(MIN_BUDGET_CENTS)} a month")
    if rules.min_click_cents is not None and (
        not _is_int(rules.min_click_cents) or rules.min_click_cents < 1
    ):
        raise ValueError("the minimum per flattr must be more than 0.00 €")
    if rules.cap_cents is not None and (
        not _is_int(rules.cap_cents) or rules.cap_cents < rules.budget_cents
    ):
        raise ValueError("the cap must be at least the budget")


@dataclass(frozen=True)
class ClickWeight:
    """The part of a click the split needs. `at` is a sortable UTC timestamp."""

    id: str
    at: str
    creator: str
    url: str | None
    weight: int = 1


@dataclass(frozen=True)
class Allocation:
    creator: str
    url: str | None
    cents: int
    click_id: str | None = None


@dataclass(frozen=True)
class Split:
    """The outcome of a month: what is spent and who receives it.

    `wanted_cents` is the spend the rules ask for; `spend_cents` is what the
    balance allows (they differ only when the balance is short).
    """

    spend_cents: int
    wanted_cents: int
    allocations: tuple[Allocation, ...]

    @property
    def short_cents(self) -> int:
        return self.wanted_cents - self.spend_cents


def wanted_spend(rules: BudgetRules, total_weight: int) -> int:
    """The spend the rules ask for with `total_weight` worth of clicks.

    spend = min(max(budget, m × Σweights), C); nothing for a month with no
    clicks unless the unspent budget goes to a charity.
    """
    if total_weight <= 0:
        return rules.budget_cents if rules.charity else 0
    spend = rules.budget_cents
    if rules.min_click_cents is not None:
        spend = max(spend, rules.min_click_cents * total_weight)
    if rules.cap_cents is not None:
        spend = min(spend, rules.cap_cents)
    return spend


def affordable(wanted_cents: int, balance_cents: int | None) -> int:
    """What can really be spent: the wanted spend, or what is left of the balance.

    `None` means the balance is not known here (no hub has told us yet).
    """
    if balance_cents is None:
        return wanted_cents
    return max(0, min(wanted_cents, balance_cents))


def split_budget(
    rules: BudgetRules, clicks: Sequence[ClickWeight], balance_cents: int | None
) -> Split:
    """Divide the month's spend between its clicks, to the cent."""
    for click in clicks:
        if not _is_int(click.weight) or not 1 <= click.weight <= MAX_WEIGHT:
            raise ValueError(f"click {click.id}: weight must be 1 to {MAX_WEIGHT}")
    ordered = sorted(clicks, key=lambda c: (c.at, c.id))
    total_weight = sum(c.weight for c in ordered)
    wanted = wanted_spend(rules, total_weight)
    spend = affordable(wanted, balance_cents)
    if not ordered:
        if rules.charity and spend > 0:
            return Split(spend, wanted, (Allocation(rules.charity, None, spend),))
        return Split(spend, wanted, ())
    shares = largest_remainder(spend, [c.weight for c in ordered])
    allocations = tuple(
        Allocation(c.creator, c.url, cents, c.id) for c, cents in zip(ordered, shares, strict=True)
    )
    return Split(spend, wanted, allocations)


def per_click_cents(spend_cents: int, total_weight: int) -> int:
    """What one click of weight 1 is worth this month (rounded down); 0 without clicks."""
    return spend_cents // total_weight if total_weight > 0 else 0


def by_creator(allocations: Sequence[Allocation]) -> tuple[Allocation, ...]:
    """Merge allocations per creator, without URLs: what a private settlement shows."""
    totals: dict[str, int] = {}
    for a in allocations:
        totals[a.creator] = totals.get(a.creator, 0) + a.cents
    return tuple(Allocation(creator, None, cents) for creator, cents in sorted(totals.items()))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
