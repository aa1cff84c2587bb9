"""The money rules of DESIGN.md, as properties of daemon/budget.py."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.budget import (
    BudgetRules,
    ClickWeight,
    by_creator,
    per_click_cents,
    split_budget,
    wanted_spend,
)
from mecene.money import largest_remainder


@st.composite
def rules_st(draw: st.DrawFn) -> BudgetRules:
    budget = draw(st.integers(200, 100_000))
    min_click = draw(st.none() | st.integers(1, 5_000))
    cap = draw(st.none() | st.integers(budget, 200_000))
    return BudgetRules(budget_cents=budget, min_click_cents=min_click, cap_cents=cap)


@st.composite
def clicks_st(draw: st.DrawFn) -> list[ClickWeight]:
    n = draw(st.integers(0, 60))
    out = []
    for i in range(n):
        # Few distinct timestamps, so that ties on time are common.
        at = f"2026-10-{draw(st.integers(1, 3)):02d}T00:00:00.000000Z"
        out.append(
            ClickWeight(
                f"id-{draw(st.integers(0, 10**6))}-{i}",
                at,
                f"flattr:c{draw(st.integers(0, 5))}",
                f"https://x/{i}",
                draw(st.integers(1, 5)),
            )
        )
    return out


balance_st = st.none() | st.integers(0, 300_000)


@given(rules_st(), clicks_st(), balance_st)
@settings(max_examples=400)
def test_shares_add_up_to_the_spend_exactly(rules, clicks, balance) -> None:
    split = split_budget(rules, clicks, balance)
    assert sum(a.cents for a in split.allocations) == split.spend_cents
    assert all(isinstance(a.cents, int) and a.cents >= 0 for a in split.allocations)


@given(rules_st(), clicks_st().filter(bool), balance_st)
@settings(max_examples=400)
def test_each_share_is_within_one_cent_of_its_exact_value(rules, clicks, balance) -> None:
    split = split_budget(rules, clicks, balance)
    total = sum(c.weight for c in clicks)
    weight_of = {c.id: c.weight for c in clicks}
    for a in split.allocations:
        exact = Fraction(split.spend_cents * weight_of[a.click_id], total)
        assert abs(a.cents - exact) < 1


@given(rules_st(), clicks_st(), balance_st, st.randoms())
@settings(max_examples=200)
def test_the_split_does_not_depend_on_the_order_clicks_arrive_in(
    rules, clicks, balance, rnd: random.Random
) -> None:
    shuffled = list(clicks)
    rnd.shuffle(shuffled)
    assert split_budget(rules, clicks, balance) == split_budget(rules, shuffled, balance)


@given(rules_st(), clicks_st().filter(bool))
@settings(max_examples=300)
def test_minimum_per_click_and_cap(rules, clicks) -> None:
    total = sum(c.weight for c in clicks)
    spend = split_budget(rules, clicks, None).spend_cents
    expected = rules.budget_cents
    if rules.min_click_cents is not None:
        expected = max(expected, rules.min_click_cents * total)
    if rules.cap_cents is not None:
        expected = min(expected, rules.cap_cents)
    assert spend == expected
    assert spend >= rules.budget_cents  # the cap is never below the budget
    if rules.cap_cents is not None:
        assert spend <= rules.cap_cents
    if rules.min_click_cents is not None and (
        rules.cap_cents is None or rules.min_click_cents * total <= rules.cap_cents
    ):
        assert spend >= rules.min_click_cents * total


@given(rules_st(), clicks_st(), st.integers(0, 300_000))
def test_the_spend_never_exceeds_the_balance(rules, clicks, balance) -> None:
    split = split_budget(rules, clicks, balance)
    assert split.spend_cents <= balance
    assert split.spend_cents == min(split.wanted_cents, balance)


def test_ties_go_to_the_earlier_click_then_the_smaller_id() -> None:
    at = "2026-10-01T00:00:00.000000Z"
    later = "2026-10-02T00:00:00.000000Z"
    clicks = [
        ClickWeight("b", at, "flattr:b", "https://b", 1),
        ClickWeight("a", at, "flattr:a", "https://a", 1),
        ClickWeight("c", later, "flattr:c", "https://c", 1),
    ]
    split = split_budget(BudgetRules(budget_cents=200), clicks, None)
    # 200 / 3 = 66 r 2: the two extra cents go to the earliest clicks, "a" before "b".
    assert [(a.click_id, a.cents) for a in split.allocations] == [("a", 67), ("b", 67), ("c", 66)]


def test_weights_share_in_proportion() -> None:
    clicks = [
        ClickWeight("a", "1", "flattr:a", None, 1),
        ClickWeight("b", "2", "flattr:b", None, 4),
    ]
    assert [a.cents for a in split_budget(BudgetRules(500), clicks, None).allocations] == [100, 400]


def test_a_month_without_clicks_spends_nothing_unless_a_charity_is_chosen() -> None:
    assert split_budget(BudgetRules(500), [], None).spend_cents == 0
    split = split_budget(BudgetRules(500, charity="liberapay:charity"), [], 300)
    assert split.spend_cents == 300  # limited by the balance
    assert [(a.creator, a.cents) for a in split.allocations] == [("liberapay:charity", 300)]


def test_the_balance_short_is_reported() -> None:
    clicks = [ClickWeight("a", "1", "flattr:a", None, 1)]
    split = split_budget(BudgetRules(500), clicks, 120)
    assert (split.spend_cents, split.wanted_cents, split.short_cents) == (120, 500, 380)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_cents": 199},
        {"budget_cents": 500, "cap_cents": 499},
        {"budget_cents": 500, "min_click_cents": 0},
        {"budget_cents": 2.5},
        {"budget_cents": True},
    ],
)
def test_rules_outside_design_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        BudgetRules(**kwargs)


def test_weights_outside_one_to_five_are_refused() -> None:
    with pytest.raises(ValueError):
        split_budget(BudgetRules(500), [ClickWeight("a", "1", "flattr:a", None, 6)], None)


@given(st.integers(0, 10**9), st.lists(st.integers(1, 5), min_size=1, max_size=50))
def test_largest_remainder_is_exact(total, weights) -> None:
    shares = largest_remainder(total, weights)
    assert sum(shares) == total
    for share, w in zip(shares, weights, strict=True):
        assert abs(share - Fraction(total * w, sum(weights))) < 1


def test_private_merges_per_creator_without_urls() -> None:
    clicks = [
        ClickWeight("a", "1", "flattr:x", "https://x/1", 1),
        ClickWeight("b", "2", "flattr:x", "https://x/2", 1),
        ClickWeight("c", "3", "flattr:y", "https://y/1", 1),
    ]
    merged = by_creator(split_budget(BudgetRules(300), clicks, None).allocations)
    assert [(a.creator, a.url, a.cents) for a in merged] == [
        ("flattr:x", None, 200),
        ("flattr:y", None, 100),
    ]


def test_per_click_value() -> None:
    assert per_click_cents(500, 3) == 166
    assert per_click_cents(500, 0) == 0
    assert wanted_spend(BudgetRules(500, min_click_cents=100), 7) == 700
