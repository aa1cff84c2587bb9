"""The hub's money routing (hub/routing.py) and typed ledger accounts, without
a database: where each allocation goes, and one fee rounding rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub import routing
from hub.ledger import (
    KINDS,
    Creator,
    Escrow,
    Fees,
    Payouts,
    Provider,
    ProviderFees,
    User,
    Withheld,
    parse_account,
)
from hub.routing import Piece

GIVER, OWNER, MONTH = "giver-account", "owner-account", "2026-10"


def pieces(*cents: int, key: str = "domain:a.example", transfer: str | None = None) -> list[Piece]:
    return [
        Piece(GIVER, MONTH, key, c, url=f"https://a.example/{i}", transfer_id=transfer)
        for i, c in enumerate(cents)
    ]


CASES = [
    # (what, owner of the key, owner gave, non-profit, state, credited legs)
    ("proved, gave", OWNER, True, False, "credited", {Creator(OWNER): 27, Fees.of(GIVER): 3}),
    ("proved, non-profit", OWNER, True, True, "credited", {Creator(OWNER): 30}),
    ("proved, gave nothing", OWNER, False, False, "withheld", {Withheld(OWNER, MONTH): 30}),
    ("nobody proved it", None, False, False, "escrow", {Escrow("domain:a.example"): 30}),
]


@pytest.mark.parametrize(("what", "owner", "gave", "nonprofit", "state", "legs"), CASES)
def test_route_sends_each_key_where_the_rules_say(
    what: str, owner: str | None, gave: bool, nonprofit: bool, state: str, legs: dict
) -> None:
    out = routing.route(
        pieces(10, 10, 10),
        owners={"domain:a.example": owner},
        gave={OWNER: gave, GIVER: True},
        nonprofit={OWNER: nonprofit, GIVER: False},
        must_give=True,
        now=1,
    )
    assert {a: c for a, c in out.legs.items() if c} == legs, what
    assert [r["state"] for r in out.rows] == [state] * 3
    assert sum(out.legs.values()) == 30  # the caller debits the giver
    assert (out.credited_cents, out.held_cents) == ((30, 0) if state == "credited" else (0, 30))
    fees = [r["fee_cents"] for r in out.rows]
    assert fees == ([None] * 3 if state != "credited" else [1, 1, 1] if not nonprofit else [0] * 3)


def test_without_must_give_an_owner_who_gave_nothing_is_credited() -> None:
    out = routing.route(
        pieces(10),
        owners={"domain:a.example": OWNER},
        gave={OWNER: False},
        nonprofit={OWNER: False},
        must_give=False,
        now=1,
    )
    assert out.rows[0]["state"] == "credited"


def stored(ps: list[Piece], first_id: int = 1) -> list[Piece]:
    return [
        Piece(p.giver, p.month, p.creator, p.cents, p.url, p.transfer_id, id=first_id + i)
        for i, p in enumerate(ps)
    ]


@given(
    st.lists(
        st.tuples(st.sampled_from(["domain:a.example", "domain:b.example"]), st.integers(0, 500)),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
)
def test_the_same_flattrs_cost_the_same_fee_on_every_path(
    rows: list[tuple[str, int]], nonprofit: bool
) -> None:
    """One owner of two keys: credited at once, withheld then released, or in
    escrow then claimed, the fee is the same, cent for cent."""
    ps = [Piece(GIVER, MONTH, key, c) for key, c in rows]
    keys = {p.creator for p in ps}
    at_once = routing.route(
        ps,
        owners=dict.fromkeys(keys, OWNER),
        gave={OWNER: True},
        nonprofit={OWNER: nonprofit},
        must_give=True,
        now=1,
    )
    withheld = routing.release(
        stored(ps),
        source=Withheld(OWNER, MONTH),
        owner=OWNER,
        gave=True,
        nonprofit=nonprofit,
        must_give=True,
        month=MONTH,
        now=2,
    )
    by_key = {k: [p for p in ps if p.creator == k] for k in sorted(keys)}
    claimed = [
        routing.release(
            stored(group),
            source=Escrow(k),
            owner=OWNER,
            gave=True,
            nonprofit=nonprofit,
            must_give=True,
            month="2026-12",
            now=3,
        )
        for k, group in by_key.items()
    ]
    fee = Fees.of(GIVER)
    assert withheld.legs[fee] == at_once.legs[fee] == sum(c.legs[fee] for c in claimed)
    assert withheld.legs[Creator(OWNER)] == at_once.legs[Creator(OWNER)]
    # Every release balances: what leaves the source arrives somewhere.
    for out in (withheld, *claimed):
        assert sum(out.legs.values()) == 0
    # Row by row, the fee shares are the same too.
    fees_at_once = sorted((r["creator"], r["cents"], r["fee_cents"]) for r in at_once.rows)
    by_id = {p.id: p for p in stored(ps)}
    fees_released = sorted(
        (by_id[row_id].creator, by_id[row_id].cents, values["fee_cents"])
        for row_id, values in withheld.updates
    )
    assert fees_at_once == fees_released


def test_escrow_claimed_by_someone_who_gave_nothing_is_withheld_in_the_month_of_release() -> None:
    out = routing.release(
        stored(pieces(40, 60)),
        source=Escrow("domain:a.example"),
        owner=OWNER,
        gave=False,
        nonprofit=False,
        must_give=True,
        month="2026-12",
        now=5,
    )
    assert dict(out.legs) == {Escrow("domain:a.example"): -100, Withheld(OWNER, "2026-12"): 100}
    assert {v["state"] for _i, v in out.updates} == {"withheld"}
    assert {v["withheld_month"] for _i, v in out.updates} == {"2026-12"}


def test_a_transfer_is_its_own_fee_unit() -> None:
    """Two transfers of 5 ct to one key: 1 ct of fee each (rounded half up),
    not 1 ct for the 10 ct together."""
    ps = pieces(5, transfer="t1") + pieces(5, transfer="t2")
    out = routing.route(
        ps,
        owners={"domain:a.example": OWNER},
        gave={OWNER: True},
        nonprofit={OWNER: False},
        must_give=True,
        now=1,
    )
    assert out.legs[Fees.of(GIVER)] == 2


def test_only_stored_allocations_are_released() -> None:
    with pytest.raises(ValueError, match="stored"):
        routing.release(
            pieces(10),
            source=Escrow("domain:a.example"),
            owner=OWNER,
            gave=True,
            nonprofit=False,
            must_give=True,
            month=MONTH,
            now=1,
        )


# -- typed ledger accounts ---------------------------------------------------------------

ACCOUNTS = [
    User("abc"),
    Creator("abc"),
    Withheld("abc", "2026-10"),
    Escrow("domain:a.example"),
    Escrow("url:https://a.example/x:y"),
    Fees("07"),
    Provider("card"),
    ProviderFees("card"),
    Payouts(),
]


@pytest.mark.parametrize("account", ACCOUNTS, ids=str)
def test_a_ledger_account_is_found_again_from_its_name(account: object) -> None:
    assert parse_account(str(account)) == account


def test_only_the_outside_world_may_go_negative() -> None:
    assert [k.prefix for k in KINDS.values() if k.may_go_negative] == ["provider"]


@pytest.mark.parametrize("name", ["nobody:x", "user", "payouts:x", "fees"])
def test_a_name_of_no_kind_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        parse_account(name)


def test_the_names_are_the_stored_ones() -> None:
    assert [a.name for a in ACCOUNTS[:4]] == [
        "user:abc",
        "creator:abc",
        "withheld:abc:2026-10",
        "escrow:domain:a.example",
    ]
    assert Fees.of("x").name.startswith("fees:") and len(Fees.of("x").name) == 7
