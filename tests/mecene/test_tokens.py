"""A month's spend as tokens of one value (issue 27): whole tokens only, and
each creator's share by randomised rounding whose expectation is exact."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mecene import money, tokens

SHARES = st.lists(
    st.tuples(st.sampled_from([f"domain:c{i}.example" for i in range(30)]), st.integers(0, 50_000)),
    min_size=1,
    max_size=30,
    unique_by=lambda s: s[0],
)


def test_one_value_whose_fee_is_a_whole_cent() -> None:
    """No token escapes the fee: 10 % of a token is exactly a cent."""
    assert money.creator_fee_cents(tokens.DENOMINATION, nonprofit=False) * 10 == (
        tokens.DENOMINATION
    )
    assert tokens.whole(735) == 73 and tokens.whole(9) == 0
    assert tokens.whole(10**9) == tokens.MAX_TOKENS  # the rest stays on the balance
    with pytest.raises(ValueError):
        tokens.whole(-1)


@settings(max_examples=200, deadline=None)
@given(shares=SHARES, draw=st.integers(0, 2**32 - 1))
def test_the_tokens_add_up_and_each_share_is_rounded_down_or_up(
    shares: list[tuple[str, int]], draw: int
) -> None:
    total = sum(c for _k, c in shares)
    count = tokens.whole(total)
    got = tokens.apportion(shares, count, lambda _n: draw)
    assert sum(got.values()) == count
    for creator, cents in shares:
        part = Fraction(cents * count, total) if total else Fraction(0)
        assert int(part) <= got.get(creator, 0) <= int(part) + 1


@settings(max_examples=30, deadline=None)
@given(shares=SHARES)
def test_each_creator_gets_its_exact_share_on_average(shares: list[tuple[str, int]]) -> None:
    """Over draws spread evenly across the range, the mean number of tokens
    of each creator is its exact part, to the spread's grain."""
    total = sum(c for _k, c in shares)
    count = tokens.whole(total)
    draws = 1000
    sums: dict[str, int] = {}
    for i in range(draws):
        got = tokens.apportion(shares, count, lambda n, i=i: i * n // draws)
        for creator, n in got.items():
            sums[creator] = sums.get(creator, 0) + n
    for creator, cents in shares:
        part = Fraction(cents * count, total) if total else Fraction(0)
        mean = Fraction(sums.get(creator, 0), draws)
        assert abs(mean - part) <= Fraction(1, draws)


def test_apportion_refuses_what_makes_no_sense() -> None:
    with pytest.raises(ValueError):
        tokens.apportion([("domain:a.example", -1)], 1, lambda n: 0)
    with pytest.raises(ValueError):
        tokens.apportion([("domain:a.example", 0)], 1, lambda n: 0)
    assert tokens.apportion([("domain:a.example", 0)], 0, lambda n: 0) == {}
