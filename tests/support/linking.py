"""The linking attacks of issue 27, as a curious hub operator would run them
on what it holds: its database (spent tokens with their creators, token
issuances, nonces) and the log of its load balancer (each request's time,
address and path; a signed request's account). Each attack guesses, for
every account, the creators it paid; `recall` says what share of each
person's real creators the guesses found. The baseline is guessing by
popularity alone: the most redeemed creators, the same for everyone.

Used by bench/linking.py (a simulation of 10,000 people) and by the real
month end of tests/system/test_linking.py.

Every attack is told how many creators each person has (`truth`'s sizes):
that is generous to the attacker, and the baseline gets it too.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Redemption:
    at: float  # seconds
    address: str
    creator: str
    key_id: str = ""


@dataclass(frozen=True)
class Signed:
    at: float
    address: str
    account: str


@dataclass(frozen=True)
class Issue:
    """A token issuance the hub signed for an account (its month's spend, a
    gift's amount, or a batch for gifts)."""

    at: float
    account: str
    cents: int
    key_id: str = ""
    gift: bool = False


Guesses = dict[str, list[str]]
Truth = dict[str, set[str]]


def recall(guesses: Guesses, truth: Truth) -> float:
    """The mean, over people, of the share of their creators guessed."""
    shares = [len(set(guesses.get(a, [])) & c) / len(c) for a, c in truth.items() if c]
    return sum(shares) / len(shares) if shares else 0.0


def _popular(redemptions: Iterable[Redemption]) -> list[str]:
    counts = Counter(r.creator for r in redemptions)
    return [c for c, _n in counts.most_common()]


def _top(counts: Counter[str], k: int, popular: Sequence[str]) -> list[str]:
    """The k creators with the most evidence, then the most popular."""
    out = [c for c, _n in counts.most_common(k)]
    for c in popular:
        if len(out) >= k:
            break
        if c not in out:
            out.append(c)
    return out


def _guess(attributed: dict[str, Counter[str]], truth: Truth, popular: Sequence[str]) -> Guesses:
    return {a: _top(attributed.get(a, Counter()), len(c), popular) for a, c in truth.items()}


def popularity(redemptions: Sequence[Redemption], truth: Truth) -> Guesses:
    """The baseline: everyone paid the most popular creators."""
    return _guess({}, truth, _popular(redemptions))


def next_signed(
    redemptions: Sequence[Redemption], signed: Sequence[Signed], truth: Truth
) -> Guesses:
    """Points 1 and the nonce join: each redemption belongs to whoever made
    the signed request nearest to it in time (the nonces the hub keeps with
    their times are the same signed requests)."""
    ordered = sorted(signed, key=lambda s: s.at)
    times = [s.at for s in ordered]
    attributed: dict[str, Counter[str]] = defaultdict(Counter)
    for r in redemptions:
        i = bisect.bisect_left(times, r.at)
        near = [j for j in (i - 1, i) if 0 <= j < len(times)]
        if near:
            j = min(near, key=lambda j: abs(times[j] - r.at))
            attributed[ordered[j].account][r.creator] += 1
    return _guess(attributed, truth, _popular(redemptions))


def same_address(
    redemptions: Sequence[Redemption], signed: Sequence[Signed], truth: Truth
) -> Guesses:
    """Point 5: a redemption from an address only one account's signed
    requests come from is that account's."""
    owners: dict[str, set[str]] = defaultdict(set)
    for s in signed:
        owners[s.address].add(s.account)
    return _sole_owner(redemptions, owners, lambda r: r.address, truth)


def key_id(redemptions: Sequence[Redemption], issues: Sequence[Issue], truth: Truth) -> Guesses:
    """Point 2: a token key only one account was issued with is that account's."""
    holders: dict[str, set[str]] = defaultdict(set)
    for i in issues:
        holders[i.key_id].add(i.account)
    return _sole_owner(redemptions, holders, lambda r: r.key_id, truth)


def _sole_owner(
    redemptions: Sequence[Redemption],
    owners: dict[str, set[str]],
    mark: Callable[[Redemption], str],
    truth: Truth,
) -> Guesses:
    """A redemption whose mark (address, key id) only one account has is its."""
    attributed: dict[str, Counter[str]] = defaultdict(Counter)
    for r in redemptions:
        who = owners.get(mark(r), set())
        if len(who) == 1:
            attributed[next(iter(who))][r.creator] += 1
    return _guess(attributed, truth, _popular(redemptions))


def _by_amount(
    redemptions: Sequence[Redemption], issues: Sequence[Issue], window: float, token_cents: int
) -> dict[str, Counter[str]]:
    by_creator: dict[str, list[float]] = defaultdict(list)
    for r in redemptions:
        by_creator[r.creator].append(r.at)
    for times in by_creator.values():
        times.sort()
    attributed: dict[str, Counter[str]] = defaultdict(Counter)
    for i in issues:
        if not i.gift:
            continue
        for creator, times in by_creator.items():
            n = bisect.bisect_right(times, i.at + window) - bisect.bisect_left(times, i.at)
            if n and n * token_cents == i.cents:
                attributed[i.account][creator] += 1
    return attributed


def amount(
    redemptions: Sequence[Redemption],
    issues: Sequence[Issue],
    truth: Truth,
    window: float = 12 * 3600.0,
    token_cents: int = 10,
) -> Guesses:
    """Point 3: a gift's issuance of exactly c cents, then a creator whose
    redemptions in the window after it add up to exactly c: the gift's."""
    attributed = _by_amount(redemptions, issues, window, token_cents)
    return _guess(attributed, truth, _popular(redemptions))


def gifts_matched(
    redemptions: Sequence[Redemption],
    issues: Sequence[Issue],
    gifts: dict[str, str],
    window: float = 12 * 3600.0,
    token_cents: int = 10,
) -> float:
    """Of the gifts (account: its creator), the share whose creator the
    amount attack names, and names alone."""
    attributed = _by_amount(redemptions, issues, window, token_cents)
    hits = [set(attributed.get(a, Counter())) == {c} for a, c in gifts.items()]
    return sum(hits) / len(hits) if hits else 0.0


def bursts(
    redemptions: Sequence[Redemption], signed: Sequence[Signed], truth: Truth, gap: float = 1.0
) -> Guesses:
    """Point 4: redemptions closer than `gap` to each other come from one
    daemon; the burst belongs to whoever signed nearest to its start."""
    ordered = sorted(redemptions, key=lambda r: r.at)
    groups: list[list[Redemption]] = []
    for r in ordered:
        if groups and r.at - groups[-1][-1].at < gap:
            groups[-1].append(r)
        else:
            groups.append([r])
    stamped = [
        Redemption(g[0].at, g[0].address, c.creator) for g in groups if len(g) > 1 for c in g
    ]
    return next_signed(stamped, signed, truth) if stamped else popularity(ordered, truth)


def every_attack(
    redemptions: Sequence[Redemption],
    signed: Sequence[Signed],
    issues: Sequence[Issue],
    truth: Truth,
) -> dict[str, float]:
    """Each attack's recall, and the popularity baseline's."""
    return {
        "popularity (baseline)": recall(popularity(redemptions, truth), truth),
        "next signed request / nonces": recall(next_signed(redemptions, signed, truth), truth),
        "same address": recall(same_address(redemptions, signed, truth), truth),
        "key id": recall(key_id(redemptions, issues, truth), truth),
        "gift amount": recall(amount(redemptions, issues, truth), truth),
        "bursts": recall(bursts(redemptions, signed, truth), truth),
    }
