"""Each lifecycle's pure part as a table: events in, state and decisions
out, no database, no clock, no socket (DESIGN.md, "Rooms by lifecycle")."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from daemon import budget, sendpolicy
from daemon.creators.policy import Joined, MalformedList, not_own, parse_joined
from daemon.errors import FlattrOnce, FlattrOwner, IdConflict, InsufficientFunds, Invalid
from daemon.flattrs import policy as flattrs
from daemon.gifts import policy as gifts
from daemon.months import policy as months
from daemon.months.policy import MonthState as M
from daemon.unlinkable import policy as tokens

NOW = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)

# -- the month --------------------------------------------------------------------------

MOVES = [
    (M.OPEN, M.CLOSED, True),
    (M.OPEN, M.SUBMITTED, False),
    (M.OPEN, M.SETTLED, False),
    (M.CLOSED, M.SUBMITTED, True),
    (M.CLOSED, M.CLOSED, True),  # split again
    (M.CLOSED, M.SETTLED, False),  # never settled unsent
    (M.CLOSED, M.OPEN, False),
    (M.SUBMITTED, M.SETTLED, True),
    (M.SUBMITTED, M.SUBMITTED, True),  # sent again
    (M.SUBMITTED, M.CLOSED, True),  # refused, not arrived, a person needed
    (M.SUBMITTED, M.OPEN, False),
    (M.SETTLED, M.CLOSED, False),
    (M.SETTLED, M.SUBMITTED, False),
    (M.SETTLED, M.OPEN, False),
]


@pytest.mark.parametrize(("frm", "to", "allowed"), MOVES)
def test_a_month_moves_only_along_its_lifecycle(frm: M, to: M, allowed: bool) -> None:
    if allowed:
        assert months.move(frm, to) == to
    else:
        with pytest.raises(months.IllegalMove):
            months.move(frm, to)


def test_every_pair_of_month_states_is_in_the_table() -> None:
    assert {(f, t) for f, t, _ in MOVES} == {(f, t) for f in M for t in M} - {
        (M.OPEN, M.OPEN),
        (M.SETTLED, M.SETTLED),
    }


@pytest.mark.parametrize(
    ("state", "again", "closes"),
    [
        ("open", False, True),
        ("open", True, True),
        ("closed", False, False),
        ("closed", True, True),
        ("submitted", True, True),
        ("submitted", False, False),
        ("settled", True, False),
        (None, True, False),
    ],
)
def test_which_months_close(state: str | None, again: bool, closes: bool) -> None:
    assert months.closes(state, again=again) is closes


@pytest.mark.parametrize(
    ("latest", "current", "opened"),
    [
        (None, "2026-11", ["2026-11"]),
        ("2026-11", "2026-11", ["2026-11"]),
        ("2026-08", "2026-11", ["2026-09", "2026-10", "2026-11"]),
        ("2025-12", "2026-01", ["2026-01"]),
        ("2026-12", "2026-11", ["2026-11"]),  # a clock moved back opens nothing else
    ],
)
def test_no_month_is_skipped(latest: str | None, current: str, opened: list[str]) -> None:
    assert months.to_open(latest, current) == opened


@pytest.mark.parametrize(
    ("outcome", "asked_again"),
    [
        (None, True),
        (
            {"pending_cents": 0, "credited_cents": 500, "withheld_cents": 0, "escrow_cents": 0},
            False,
        ),
        ({"pending_cents": 0, "credited_cents": 300, "withheld_cents": 200}, True),
        ({"pending_cents": 0, "escrow_cents": 1}, True),
        ({"pending_cents": 10}, True),
    ],
)
def test_a_settled_month_is_asked_about_while_its_money_moves(
    outcome: dict[str, int] | None, asked_again: bool
) -> None:
    assert months.still_moving(outcome) is asked_again


def test_a_clock_moved_back_is_told_apart_from_a_month_that_just_closed() -> None:
    why = months.clock_moved_back("2026-11", "2026-12-01T00:00:02Z", NOW, "2026-11", "Europe/Paris")
    assert why is not None and "the clock has moved back" in why and "Europe/Paris" in why
    # The clock reads the next month: the month simply closed a moment ago.
    assert months.clock_moved_back("2026-10", "2026-11-01T00:00:00Z", NOW, "2026-11", "UTC") is None
    assert months.clock_moved_back("2026-11", None, NOW, "2026-11", "UTC") is None


# -- flattrs and subscriptions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cancelled", "last", "month", "state"),
    [
        (None, "2027-01", "2026-11", "active"),
        (None, "2026-11", "2026-11", "active"),
        (None, "2026-10", "2026-11", "finished"),
        ("2026-12", "2027-01", "2026-11", "cancelled"),
    ],
)
def test_a_subscription_s_state(cancelled: str | None, last: str, month: str, state: str) -> None:
    assert flattrs.subscription_state(cancelled, last, month) == state


def test_a_subscription_spans_its_months_and_places_one_click_each() -> None:
    assert flattrs.subscription_span("2026-11", 3) == ("2026-11", "2027-01")
    assert flattrs.subscription_span("2026-11", 12) == ("2026-11", "2027-10")
    assert flattrs.cancelled_from("2026-12") == "2027-01"
    one = flattrs.subscription_click_id("s1", "2026-11")
    assert one == flattrs.subscription_click_id("s1", "2026-11")
    assert one != flattrs.subscription_click_id("s1", "2026-12")
    assert one != flattrs.subscription_click_id("s2", "2026-11")


ROW = {"id": "c1", "url": "https://example.org/a", "creator": "flattr:a", "month": "2026-11"}


@pytest.mark.parametrize(
    ("existing", "same", "url", "creator", "outcome"),
    [
        (ROW, None, ROW["url"], ROW["creator"], "again"),
        (ROW, None, "https://example.org/b", ROW["creator"], IdConflict),
        (ROW, None, ROW["url"], "flattr:b", IdConflict),
        (None, {**ROW, "id": "c0"}, ROW["url"], ROW["creator"], FlattrOnce),
        (None, None, ROW["url"], ROW["creator"], RuntimeError),
    ],
)
def test_what_a_refused_click_means(
    existing: Any, same: Any, url: str, creator: str, outcome: Any
) -> None:
    if outcome == "again":
        assert flattrs.refused_click(existing, same, url, creator) is existing
        return
    with pytest.raises(outcome) as caught:
        flattrs.refused_click(existing, same, url, creator)
    if outcome is FlattrOnce:
        assert caught.value.extra == {"click": same}


# -- creators ------------------------------------------------------------------------------


def test_the_joined_list_is_checked_whole() -> None:
    good = {"keys": ["flattr:a", "flattr:b"], "escrow_months": 12, "nonprofit": ["flattr:b", "x"]}
    joined = parse_joined(good, NOW)
    assert joined == Joined(frozenset({"flattr:a", "flattr:b"}), 12, NOW, frozenset({"flattr:b"}))
    for bad in (
        [],
        {**good, "keys": "flattr:a"},
        {**good, "keys": [1]},
        {**good, "escrow_months": "12"},
        {**good, "nonprofit": [None]},
    ):
        with pytest.raises(MalformedList):
            parse_joined(bad, NOW)


def test_one_s_own_key_is_never_flattred() -> None:
    not_own(("flattr:me",), "flattr:you")
    with pytest.raises(FlattrOwner):
        not_own(("flattr:me",), "flattr:me")


# -- gifts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "sending", "cents", "admitted"),
    [
        (None, 0, 100_000, True),  # no balance known yet: the hub decides
        (1000, 0, 1000, True),
        (1000, 1, 1000, False),
        (1000, 500, 500, True),
        (1000, 500, 501, False),
    ],
)
def test_a_gift_is_admitted_against_the_balance_less_what_is_on_its_way(
    balance: int | None, sending: int, cents: int, admitted: bool
) -> None:
    if admitted:
        gifts.admit(balance, sending, cents)
    else:
        with pytest.raises(InsufficientFunds) as caught:
            gifts.admit(balance, sending, cents)
        assert caught.value.extra == {"balance_cents": (balance or 0) - sending}


@pytest.mark.parametrize("cents", [99, 100_001, 0, -5])
def test_a_gift_out_of_bounds_is_invalid(cents: int) -> None:
    with pytest.raises(Invalid, match=re.escape("a transfer is 1.00 € to 1000.00 €")):
        gifts.in_bounds(cents)


@pytest.mark.parametrize(
    ("private", "unlinkable", "sent"),
    [(False, False, "https://example.org/a"), (True, False, None), (False, True, None)],
)
def test_what_the_hub_is_told_of_a_gift_s_thing(private: bool, unlinkable: bool, sent: Any) -> None:
    assert gifts.url_sent("https://example.org/a", private=private, unlinkable=unlinkable) == sent


@pytest.mark.parametrize(
    ("unlinkable", "nonprofit", "fee"),
    [(False, False, 133), (False, True, 0), (True, False, 133), (True, True, 0)],
)
def test_a_gift_s_quote(unlinkable: bool, nonprofit: bool, fee: int) -> None:
    """13.30 €: 10 % in one, or as 133 tokens of 10 cents, a cent of each."""
    joined = Joined(frozenset({"flattr:a"}), 12, NOW, frozenset({"flattr:a"} if nonprofit else ()))
    q = gifts.quote("flattr:a", 1330, joined=joined, unlinkable=unlinkable, balance_cents=1000)
    assert (q["fee_cents"], q["net_cents"]) == (fee, 1330 - fee)
    assert (q["joined"], q["short_cents"], q["balance_after_cents"]) == (True, 330, -330)
    unknown = gifts.quote("flattr:b", 500, joined=None, unlinkable=False, balance_cents=None)
    assert unknown["joined"] is None and "short_cents" not in unknown


@pytest.mark.parametrize("cents", [1337, 105, 400_010])
def test_a_gift_as_tokens_is_whole_tokens(cents: int) -> None:
    """As tokens, 13.37 € would leave 7 cents no token can carry: said."""
    with pytest.raises(
        Invalid, match=re.escape("a whole number of 0.10 € tokens, at most 400.00 €")
    ):
        tokens.gift_tokens(cents)
    assert tokens.gift_tokens(1330) == 133


# -- unlinkable tokens --------------------------------------------------------------------


def test_a_month_s_plan_is_whole_tokens_of_one_value_shared_by_randomised_rounding() -> None:
    """13.40 € of shares (13.37 € and 0.03 €) is 134 tokens of 10 cents: the
    first share's exact part is 133.7 tokens, the second's 0.3. With a draw
    at the start of the range, the fractions' first whole step falls in the
    first share it reaches; over the whole range, each gets its extra token
    with the probability of its fraction (tests/mecene/test_tokens.py)."""
    shares = [
        budget.Allocation("flattr:a", None, 1337, None),
        budget.Allocation("flattr:b", None, 3, None),
    ]
    # The draws: the creators' order (0, 1: as given), then the point at 0.5,
    # within flattr:a's fraction (0.7): a gets the extra token.
    draws = iter([0, 1, 2**31])
    rows = tokens.planned("2026-11", shares, lambda _n: next(draws))
    assert [(r["creator"], r["cents"]) for r in rows].count(("flattr:a", 10)) == 134
    assert {r["cents"] for r in rows} == {10} and len(rows) == 134
    assert {r["state"] for r in rows} == {"planned"} and len({r["id"] for r in rows}) == 134
    draws = iter([0, 1, 2**32 * 8 // 10])  # the point at 0.8: past a's 0.7, in b's 0.3
    rows = tokens.planned("2026-11", shares, lambda _n: next(draws))
    got = [r["creator"] for r in rows]
    assert (got.count("flattr:a"), got.count("flattr:b")) == (133, 1)
    # A month short of a whole token spends nothing of it.
    assert tokens.spend(1347) == 1340 and tokens.spend(9) == 0


@pytest.mark.parametrize(
    ("status", "data", "meaning"),
    [
        (201, {}, tokens.Redeemed()),
        (200, {}, tokens.Redeemed()),
        (409, {"error": "token_spent"}, tokens.RedeemFailed("token_spent")),
        (400, "not json", tokens.RedeemFailed("refused")),
        (410, {"error": "token_expired"}, tokens.RedeemFailed("token_expired")),
    ],
)
def test_what_a_redemption_s_answer_means(status: int, data: Any, meaning: Any) -> None:
    assert tokens.redemption_answer(status, data, attempts=1) == meaning


@pytest.mark.parametrize(("status", "attempts"), [(None, 1), (429, 2), (408, 3), (503, 4)])
def test_a_redemption_not_answered_is_tried_again_later(status: int | None, attempts: int) -> None:
    later = tokens.redemption_answer(status, None, attempts=attempts)
    assert isinstance(later, tokens.RedeemLater)
    assert 0.8 * 5 * 2 ** (attempts - 1) <= later.seconds <= 5 * 2 ** (attempts - 1)


def test_a_token_is_redeemed_within_its_window() -> None:
    assert tokens.redeem_at(1000.0, 3600.0, lambda n: n - 1) == pytest.approx(1000.0 + 3600.0)
    assert tokens.redeem_at(1000.0, 3600.0, lambda n: 0) == 1000.0
    assert tokens.redeem_at(1000.0, 0.0, lambda n: 0) == 1000.0


# -- the month's trip to the hub -----------------------------------------------------


def _fixed(low: float, high: float) -> float:
    return high


@pytest.mark.parametrize(
    ("meaning", "receipt", "to", "record", "wait"),
    [
        (
            sendpolicy.Accepted(),
            ("RECEIPT", "SIG"),
            "settled",
            {
                "state": "settled",
                "receipt": "RECEIPT",
                "receipt_signature": "SIG",
                "settled_at": "2026-11-03T09:30:00.000000Z",
                "sync_error": None,
                "next_sync_at": None,
            },
            None,
        ),
        (
            sendpolicy.NeedsPerson("month_before_account", "too old"),
            None,
            "closed",
            {"state": "closed", "sync_error": "month_before_account", "next_sync_at": None},
            None,
        ),
        (
            sendpolicy.SettledElsewhere("another document", 40.0),
            None,
            "closed",
            {
                "state": "closed",
                "sync_attempts": 3,
                "sync_error": "settled_elsewhere",
                "next_sync_at": "2026-11-03T09:30:40.000000Z",
            },
            40.0,
        ),
        (
            sendpolicy.failed("hub_unreachable", "down", 3, "submitted", 5.0, _fixed),
            None,
            "submitted",
            {
                "state": "submitted",
                "sync_attempts": 3,
                "sync_error": "hub_unreachable",
                "next_sync_at": "2026-11-03T09:30:20.000000Z",
            },
            20.0,
        ),
        (
            sendpolicy.Retry("month_not_ended", "later", 90.0, "closed"),
            None,
            "closed",
            {
                "state": "closed",
                "sync_attempts": 3,
                "sync_error": "month_not_ended",
                "next_sync_at": "2026-11-03T09:31:30.000000Z",
            },
            90.0,
        ),
    ],
)
def test_a_month_after_the_hub_s_answer(
    meaning: Any, receipt: Any, to: str, record: dict[str, Any], wait: float | None
) -> None:
    step = months.answered("submitted", meaning, attempts=3, now=NOW.timestamp(), receipt=receipt)
    assert (step.state, step.record, step.wait) == (to, record, wait)
    assert step.refresh_balance is (to == "settled")


def test_a_month_that_pays_one_s_own_keys_is_split_again() -> None:
    step = months.answered(
        "submitted", sendpolicy.SplitAgain(("flattr:me",)), attempts=1, now=NOW.timestamp()
    )
    assert (step.state, step.own_keys, step.split_again, step.record) == (
        "closed",
        ("flattr:me",),
        True,
        {},
    )


def test_an_answer_cannot_move_a_month_off_its_lifecycle() -> None:
    # Accepted without its checked receipt is the link's to turn into a retry.
    with pytest.raises(ValueError, match="checked receipt"):
        months.answered("submitted", sendpolicy.Accepted(), attempts=1, now=0)
    # A settled month is never answered again into another state.
    with pytest.raises(months.IllegalMove):
        months.answered("settled", sendpolicy.NeedsPerson("x", "y"), attempts=1, now=0)
    with pytest.raises(months.IllegalMove):
        months.answered("open", sendpolicy.Accepted(), attempts=1, now=0, receipt=("r", "s"))
