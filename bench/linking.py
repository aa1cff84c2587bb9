"""How much of each person's creators a curious hub operator recovers from
its full view (its database and its load balancer's log) after a month end
(issue 27): the linking attacks of tests/support/linking.py on a simulated
month of N people (10,000 by default), each paying 20 creators drawn from
2,000 by a Zipf popularity, 10 % of them also making one gift (to a
creator drawn by the same popularity, one of theirs or not). The baseline
is guessing by popularity alone, in the same run.

Three daemons' behaviours, each simulated from the same people:
- before: the behaviour issue 27 measured (a signed request 8 ms after each
  redemption in the same pass; a gift issued at its moment, for its amount;
  no relay);
- now, no relay: the daemon as it is (redemptions and signed calls on
  schedules of their own, never within a random 2–4 minutes of each other
  (daemon/unlinkable/spacing.py); the pass on its own random schedule;
  gifts from tokens bought in batches of 5 € at a random moment 30–90
  minutes after they are needed (daemon/unlinkable/pool.py)), without an
  Oblivious HTTP relay: redemptions come from the person's address;
- now, relay: the same through a relay: redemptions come from its address.

Times are the daemon's own defaults (a 12-hour redemption window, a
2-minute gap, passes every 30–90 minutes); people's months close over a
day (time zones, computers asleep). One key for the month (key
consistency), so the key-id attack has nothing to go on.

    .venv/bin/python bench/linking.py [--people 10000] [--seed 27]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mecene import tokens  # noqa: E402
from tests.support.linking import (  # noqa: E402
    Issue,
    Redemption,
    Signed,
    every_attack,
    gifts_matched,
)

HOUR = 3600.0
WINDOW = 12 * HOUR
GAP = 120.0
CREATORS = 2000
EACH = 20
BUDGETS_EUROS = (2, 3, 5, 7, 10, 15, 20)


class Person:
    def __init__(self, i: int, rng: random.Random, weights: list[float]) -> None:
        self.account = f"acct{i}"
        self.address = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        creators: set[str] = set()
        while len(creators) < EACH:
            creators.add(f"creator{rng.choices(range(CREATORS), weights)[0]}")
        self.creators = sorted(creators)
        spend = rng.choice(BUDGETS_EUROS) * 100
        shares = [(c, rng.randint(1, 5)) for c in self.creators]
        self.tokens = tokens.apportion(shares, spend // tokens.DENOMINATION, rng.randrange)
        self.settle_at = rng.uniform(0, 24 * HOUR)
        self.gift: tuple[float, str, int] | None = None
        if rng.random() < 0.1:
            cents = rng.randint(10, 200) * tokens.DENOMINATION
            creator = f"creator{rng.choices(range(CREATORS), weights)[0]}"
            self.gift = (rng.uniform(0, 24 * HOUR), creator, cents)

    def truth(self) -> set[str]:
        paid = {c for c, n in self.tokens.items() if n}
        return paid | ({self.gift[1]} if self.gift else set())


def _passes(p: Person, rng: random.Random) -> list[float]:
    """The person's signed passes: the settlement and issuance, then the
    pass's own schedule for two days."""
    at, out = p.settle_at, [p.settle_at]
    while at < p.settle_at + 48 * HOUR:
        at += rng.uniform(0.5 * HOUR, 1.5 * HOUR)
        out.append(at)
    return out


def before(people: list[Person], rng: random.Random) -> tuple[list, list, list]:
    redemptions, signed, issues = [], [], []
    for p in people:
        for at in _passes(p, rng):
            signed.append(Signed(at, p.address, p.account))
        issues.append(Issue(p.settle_at, p.account, sum(p.tokens.values()) * 10, "k"))
        moments = [
            (rng.uniform(p.settle_at, p.settle_at + WINDOW), c)
            for c, n in p.tokens.items()
            for _ in range(n)
        ]
        if p.gift:
            g, creator, cents = p.gift
            issues.append(Issue(g, p.account, cents, "k", gift=True))
            signed.append(Signed(g, p.address, p.account))
            moments += [(rng.uniform(g, g + WINDOW), creator) for _ in range(cents // 10)]
        for at, creator in moments:
            redemptions.append(Redemption(at, p.address, creator, "k"))
            signed.append(Signed(at + 0.008, p.address, p.account))  # the pass's GET /v1/account
    return redemptions, signed, issues


def now(people: list[Person], rng: random.Random, relay: bool) -> tuple[list, list, list]:
    redemptions, signed, issues = [], [], []
    for p in people:
        events: list[tuple[float, int, str]] = [(at, 0, "") for at in _passes(p, rng)]
        issues.append(Issue(p.settle_at, p.account, sum(p.tokens.values()) * 10, "k"))
        events += [
            (rng.uniform(p.settle_at, p.settle_at + WINDOW), 1, c)
            for c, n in p.tokens.items()
            for _ in range(n)
        ]
        if p.gift:
            g, creator, cents = p.gift
            bought = g + rng.uniform(0.5 * HOUR, 1.5 * HOUR)
            batches = -(-cents // 500)
            issues += [Issue(bought, p.account, 500, "k", gift=True) for _ in range(batches)]
            events.append((bought, 0, ""))
            events += [
                (rng.uniform(bought, bought + WINDOW), 1, creator) for _ in range(cents // 10)
            ]
        # One at a time, neither within GAP of the other (spacing.py): the
        # one that comes due too soon goes at a random moment GAP-2 GAP after.
        heapq.heapify(events)
        last = {0: float("-inf"), 1: float("-inf")}
        while events:
            at, kind, creator = heapq.heappop(events)
            other = last[1 - kind]
            if at - other < GAP:
                heapq.heappush(events, (other + GAP + rng.uniform(0, GAP), kind, creator))
                continue
            last[kind] = at
            if kind == 0:
                signed.append(Signed(at, p.address, p.account))
            else:
                redemptions.append(Redemption(at, "relay" if relay else p.address, creator, "k"))
    return redemptions, signed, issues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=27)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    weights = [1 / (rank + 1) for rank in range(CREATORS)]
    people = [Person(i, rng, weights) for i in range(args.people)]
    truth = {p.account: p.truth() for p in people}
    models = {
        "before": before(people, random.Random(args.seed + 1)),
        "now, no relay": now(people, random.Random(args.seed + 2), relay=False),
        "now, relay": now(people, random.Random(args.seed + 2), relay=True),
    }
    results = {name: every_attack(*data, truth) for name, data in models.items()}
    names = list(next(iter(results.values())))
    tokens_n = len(models["before"][0])
    print(
        f"{args.people} people, {EACH} creators each of {CREATORS} (Zipf), {tokens_n} tokens, "
        f"{sum(1 for p in people if p.gift)} gifts; share of each person's creators recovered"
    )
    print(f"{'attack':32}" + "".join(f"{m:>16}" for m in results))
    for attack in names:
        print(f"{attack:32}" + "".join(f"{results[m][attack]:16.3f}" for m in results))
    gifts = {p.account: p.gift[1] for p in people if p.gift}
    matched = {m: gifts_matched(d[0], d[2], gifts) for m, d in models.items()}
    print(f"{'gifts named by their amount':32}" + "".join(f"{matched[m]:16.3f}" for m in results))
    base = results["now, relay"]["popularity (baseline)"]
    best = max(v for k, v in results["now, relay"].items() if k != "popularity (baseline)")
    print(
        f"now, relay: the best attack {best:.3f} against the popularity baseline {base:.3f} "
        f"({best / base:.2f}x); before: {results['before']['next signed request / nonces']:.3f}"
    )


if __name__ == "__main__":
    main()
