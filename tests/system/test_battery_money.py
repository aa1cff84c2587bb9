"""Battery: a stateful Hypothesis model of a person's months.

Clicks, undos, weights, creator subscriptions and their cancellation, budget
changes (minimum per click and cap too), the balance the hub reports,
months ending and daemon restarts, in any order; after every step the
daemon's status and its month (and each closed month's frozen settlement)
are checked against a small reference of DESIGN.md's money rules, written
here without the daemon's code.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from mecene.time import FrozenClock, add_months
from tests.support.constants import battery_size
from tests.support.daemons import App


@dataclass
class RefClick:
    id: str
    month: str
    url: str | None
    creator: str
    weight: int
    live: bool = True


@dataclass
class Reference:
    """DESIGN.md's rules, as plainly as they can be written."""

    month: str = "2026-10"
    budget: int = 500
    min_click: int | None = None
    cap: int | None = None
    balance: int | None = None
    clicks: dict[str, RefClick] = field(default_factory=dict)
    subs: dict[str, tuple[str, str, str, str | None]] = field(default_factory=dict)
    placed: set[tuple[str, str]] = field(default_factory=set)  # (subscription, month)

    def live(self, month: str) -> list[RefClick]:
        return [c for c in self.clicks.values() if c.month == month and c.live]

    def spend(self, month: str) -> int:
        weight = sum(c.weight for c in self.live(month))
        if weight == 0:
            return 0
        wanted = self.budget
        if self.min_click is not None:
            wanted = max(wanted, self.min_click * weight)
        if self.cap is not None:
            wanted = min(wanted, self.cap)
        return wanted if self.balance is None else max(0, min(wanted, self.balance))

    def place_subscriptions(self, month: str) -> None:
        for sub_id, (creator, first, last, cancelled) in self.subs.items():
            due = first <= month <= last and (cancelled is None or cancelled > month)
            if not due or (sub_id, month) in self.placed:
                continue
            self.placed.add((sub_id, month))
            taken = any(c.url is None and c.creator == creator for c in self.live(month))
            if not taken:
                cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sub_id}/{month}"))
                self.clicks[cid] = RefClick(cid, month, None, creator, 1)


THINGS = [f"https://site{i}.example/post" for i in range(6)]
CREATORS = ["flattr:ann", "flattr:bob", "domain:cat.example", "liberapay:dan"]


class Months(RuleBasedStateMachine):
    clicks = Bundle("clicks")
    subscriptions = Bundle("subscriptions")

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.clock = FrozenClock(dt.datetime(2026, 10, 2, 12, 0, tzinfo=dt.UTC))
        self.app = App(Path(self.tmp.name) / "m", self.clock)
        self.ref = Reference()
        self.closed: list[str] = []

    def teardown(self) -> None:
        self.app.close()
        self.tmp.cleanup()

    @rule(
        target=clicks,
        thing=st.sampled_from(THINGS),
        creator=st.sampled_from(CREATORS),
        weight=st.integers(1, 5),
    )
    def click(self, thing: str, creator: str, weight: int) -> str:
        self.clock.advance(seconds=7)
        cid = str(uuid.uuid4())
        status, out = self.app.call(
            "POST", "/clicks", {"id": cid, "url": thing, "creator": creator, "weight": weight}
        )
        taken = any(c.url == thing for c in self.ref.live(self.ref.month))
        if taken:
            assert (status, out["error"]) == (409, "flattr_once")
        else:
            assert status == 201, out
            self.ref.clicks[cid] = RefClick(cid, self.ref.month, thing, creator, weight)
        return cid

    @rule(cid=clicks)
    def undo(self, cid: str) -> None:
        status, out = self.app.call("DELETE", f"/clicks/{cid}")
        known = self.ref.clicks.get(cid)
        if known is None:
            assert status == 404
        elif known.month != self.ref.month:
            assert (status, out["error"]) == (409, "month_closed")
        else:
            assert status == 200, out
            known.live = False

    @rule(
        target=subscriptions, creator=st.sampled_from(CREATORS), months=st.sampled_from([3, 6, 12])
    )
    def subscribe(self, creator: str, months: int) -> str:
        self.clock.advance(seconds=7)
        status, out = self.app.call(
            "POST", "/subscriptions", {"creator": creator, "months": months}
        )
        sub = out["subscription"]
        # One active subscription per thing: asked again, the daemon answers
        # with the one there is, unchanged (issue 28).
        active = [
            sub_id
            for sub_id, (c, _first, last, cancelled) in self.ref.subs.items()
            if c == creator and cancelled is None and last >= self.ref.month
        ]
        if active:
            assert (status, sub["id"]) == (200, active[0]), out
            return str(sub["id"])
        assert status == 201, out
        first = self.ref.month
        self.ref.subs[sub["id"]] = (creator, first, add_months(first, months - 1), None)
        self.ref.place_subscriptions(self.ref.month)
        return str(sub["id"])

    @rule(sub_id=subscriptions)
    def cancel(self, sub_id: str) -> None:
        status, _ = self.app.call("DELETE", f"/subscriptions/{sub_id}")
        assert status == 200
        creator, first, last, cancelled = self.ref.subs[sub_id]
        if cancelled is None:
            self.ref.subs[sub_id] = (creator, first, last, add_months(self.ref.month, 1))

    @rule(
        budget=st.integers(200, 3000),
        min_click=st.none() | st.integers(1, 300),
        cap_extra=st.none() | st.integers(0, 3000),
    )
    def change_budget(self, budget: int, min_click: int | None, cap_extra: int | None) -> None:
        cap = None if cap_extra is None else budget + cap_extra
        status, out = self.app.call(
            "PATCH",
            "/settings",
            {"budget_cents": budget, "min_click_cents": min_click, "cap_cents": cap},
        )
        assert status == 200, out
        self.ref.budget, self.ref.min_click, self.ref.cap = budget, min_click, cap

    @rule(cents=st.integers(0, 5000))
    def hub_reports_a_balance(self, cents: int) -> None:
        self.app.set_balance(cents)
        self.ref.balance = cents

    @rule()
    def month_ends(self) -> None:
        ended = self.ref.month
        expected_spend = self.ref.spend(ended)
        expected_live = self.ref.live(ended)
        y, m = map(int, add_months(ended, 1).split("-"))
        self.clock.set(dt.datetime(y, m, 1, 0, 30, tzinfo=dt.UTC))
        self.ref.month = add_months(ended, 1)
        self.ref.place_subscriptions(self.ref.month)
        status, view = self.app.call("GET", f"/months/{ended}")
        assert status == 200 and view["state"] == "closed", view
        doc = json.loads(view["settlement"]["document"])
        assert doc["spend_cents"] == expected_spend
        assert sum(a["cents"] for a in doc["allocations"]) == expected_spend
        assert len(doc["allocations"]) == len(expected_live)
        self.closed.append(ended)

    @rule()
    def restart(self) -> None:
        self.app.restart()

    @invariant()
    def the_month_follows_the_rules(self) -> None:
        status, s = self.app.call("GET", "/status")
        assert status == 200, s
        live = self.ref.live(self.ref.month)
        assert s["month"] == self.ref.month
        assert s["clicks"] == len(live)
        spend = self.ref.spend(self.ref.month)
        assert s["spend_cents"] == spend
        _, view = self.app.call("GET", f"/months/{self.ref.month}")
        shares = view["allocations"]
        assert sum(a["cents"] for a in shares) == spend
        _, listed = self.app.call("GET", f"/clicks?month={self.ref.month}")
        daemon_live = {c["id"]: c for c in listed["clicks"] if not c["undone"]}
        assert sorted(
            (c["creator"], c["url"] or "", c["weight"]) for c in daemon_live.values()
        ) == sorted((c.creator, c.url or "", c.weight) for c in live)
        total_weight = sum(c.weight for c in live)
        assert sorted(a["click"] for a in shares) == sorted(daemon_live)
        for a in shares:  # each click's share is its exact proportion, within a cent
            exact = spend * daemon_live[a["click"]]["weight"] / total_weight
            assert abs(a["cents"] - exact) < 1, (a, exact)


Months.TestCase.settings = settings(
    max_examples=battery_size(25, 300),
    stateful_step_count=battery_size(20, 50),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
class TestMoneyModel(Months.TestCase):  # type: ignore[name-defined,misc]
    pass
