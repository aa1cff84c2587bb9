"""The rules that admit money into the hub (hub/admit.py), without a
database, as a table of cases: the same rules for a month's settlement, a
direct transfer and a transfer paid as tokens. The paths that read the facts
under their locks are tested against a real database in test_hub.py,
test_gifts.py and test_tokens.py; these say which rule wins, and what each
refusal tells the person."""

from __future__ import annotations

import pytest

from hub import admit
from hub.admit import Kind
from mecene import money
from mecene.time import month_ended_everywhere

MONTH = "2026-10"
ENDED = int(month_ended_everywhere(MONTH).timestamp())  # the month over everywhere
MINE, THEIRS = "domain:mine.example", "domain:theirs.example"

ALL = (Kind.SETTLEMENT, Kind.TRANSFER, Kind.TRANSFER_TOKENS)

CASES = [
    # (what, kinds, facts, refusal code or None)
    ("enough money, another's key", ALL, {}, None),
    ("exactly the balance", ALL, {"balance_cents": 500}, None),
    ("a cent short", ALL, {"balance_cents": 499}, "insufficient_funds"),
    ("nothing on the account", ALL, {"balance_cents": 0}, "insufficient_funds"),
    ("to one's own key", ALL, {"creators": [THEIRS, MINE]}, "own_key"),
    ("own key and short: the key first", ALL, {"creators": [MINE], "balance_cents": 0}, "own_key"),
    ("owning a key not paid", ALL, {"own_keys": [MINE, "domain:other.example"]}, None),
    (
        "an account made after the month",
        (Kind.SETTLEMENT,),
        {"account_created": ENDED},
        "month_before_account",
    ),
    ("an account made a second before", (Kind.SETTLEMENT,), {"account_created": ENDED - 1}, None),
    (
        "a month before the account, own key, short: the month first",
        (Kind.SETTLEMENT,),
        {"account_created": ENDED, "creators": [MINE], "balance_cents": 0},
        "month_before_account",
    ),
    # A transfer is money now, in the hub's month: no month before the account.
    (
        "a transfer by an account made later",
        (Kind.TRANSFER, Kind.TRANSFER_TOKENS),
        {"account_created": ENDED},
        None,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("what", "kinds", "facts", "code"), CASES, ids=[c[0] for c in CASES])
def test_the_rules_admit_or_refuse_each_kind_of_money_alike(
    what: str, kinds: tuple[Kind, ...], facts: dict, code: str | None
) -> None:
    for kind in kinds:
        given = {
            "month": MONTH,
            "spend_cents": 500,
            "balance_cents": 2000,
            "creators": [THEIRS],
            "own_keys": [MINE],
            "account_created": ENDED - 86_400 * 40,
            **facts,
        }
        refused = admit.refusal(kind, **given)
        assert (refused.code if refused else None) == code, (what, kind)


def test_a_refusal_says_what_to_do_and_names_what_it_refused() -> None:
    short = admit.refusal(Kind.SETTLEMENT, month=MONTH, spend_cents=500, balance_cents=120)
    assert short is not None and short.extra["balance_cents"] == 120
    assert str(short) == (
        "the balance is 1.20 €, the settlement spends 5.00 €: deposit, and the daemon "
        "will send it again"
    )
    for kind in (Kind.TRANSFER, Kind.TRANSFER_TOKENS):
        gift = admit.refusal(kind, month=MONTH, spend_cents=500, balance_cents=120)
        assert gift is not None
        assert str(gift) == "the balance is 1.20 €, less than the 5.00 € to give"
    own = admit.refusal(
        Kind.TRANSFER,
        month=MONTH,
        spend_cents=1,
        balance_cents=1,
        creators=["domain:b.example", MINE, "domain:a.example"],
        own_keys=["domain:a.example", MINE],
    )
    assert own is not None and own.extra["keys"] == ["domain:a.example", MINE]


@pytest.mark.parametrize(
    ("cents", "gives"),
    [(0, False), (money.MIN_GIVING_CENTS - 1, False), (money.MIN_GIVING_CENTS, True)],
)
def test_giving_this_month_is_the_same_threshold_for_every_kind(cents: int, gives: bool) -> None:
    assert admit.gives(cents) is gives
