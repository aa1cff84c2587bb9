"""Redemptions and signed calls keep apart (daemon/unlinkable/spacing.py;
issue 27, point 1): neither starts within the gap of the other, and a
deferred one goes at a random moment between one and two gaps after."""

from __future__ import annotations

import pytest

from daemon.unlinkable.spacing import Spacing


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_redemption_waits_after_a_signed_call_and_a_pass_after_a_redemption() -> None:
    clock = Clock()
    spacing = Spacing(gap=120.0, now=clock, randbelow=lambda n: n // 2)
    assert spacing.before_redemption() == 0.0 and spacing.before_signed_pass() == 0.0
    spacing.signed()
    clock.t += 10
    # From the signed call: 120 s, and half of another 120 at random (drawn as half here).
    assert spacing.before_redemption() == pytest.approx(120 + 60 - 10)
    assert spacing.before_signed_pass() == 0.0  # a pass may follow a pass
    clock.t += 170
    assert spacing.before_redemption() == 0.0
    spacing.redeemed()
    clock.t += 1
    assert spacing.before_signed_pass() == pytest.approx(120 + 60 - 1)


def test_the_moment_after_the_gap_is_drawn_each_time() -> None:
    """A deferred request does not sit at a fixed distance from the other."""
    clock = Clock()
    draws = iter([0, 119_999])
    spacing = Spacing(gap=120.0, now=clock, randbelow=lambda n: next(draws))
    spacing.signed()
    assert spacing.before_redemption() == pytest.approx(120.0)
    assert spacing.before_redemption() == pytest.approx(239.999)


def test_no_gap_means_no_wait() -> None:
    spacing = Spacing(gap=0.0, now=Clock())
    spacing.signed()
    spacing.redeemed()
    assert spacing.before_redemption() == spacing.before_signed_pass() == 0.0
