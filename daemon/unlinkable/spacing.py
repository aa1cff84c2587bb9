"""Redemptions and signed calls keep apart (issue 27, point 1; DESIGN.md,
"Nothing ties a redemption to the account").

A redemption that closely follows or precedes a signed request can be
matched to it by a hub that logs request times: measured, 54 of 61
redemptions were tied to their account that way. So the two run on
schedules of their own (daemon/hublink.py's pass, daemon/unlinkable/link.py's
redemptions), one at a time, and neither starts within `gap` seconds of the
other: a redemption waits after any signed call (the person's own, such as
a deposit, too), and the hub link's scheduled pass waits after a
redemption. A wait ends at a random moment between `gap` and twice `gap`,
so that a deferred request does not sit at a fixed distance from the other
one either. The person's own calls (a deposit, a claim) are never held:
the next redemption waits for them instead.

Pure but for the loop's monotonic clock, which is passed in.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable

GAP_SECONDS = float(os.environ.get("MECENE_TOKEN_GAP_SECONDS", "120"))


class Spacing:
    def __init__(
        self,
        gap: float = GAP_SECONDS,
        now: Callable[[], float] | None = None,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self.gap = gap
        self._now = now
        self.randbelow = randbelow
        self.last_signed = float("-inf")
        self.last_redeemed = float("-inf")
        self.turn = asyncio.Lock()  # a pass or a redemption, never both at once

    def now(self) -> float:
        return self._now() if self._now is not None else asyncio.get_running_loop().time()

    def _spread(self, since: float) -> float:
        """Seconds to wait after an event at `since`: none once `gap` has
        passed; otherwise until a random moment in [gap, 2 gap) after it."""
        if self.gap <= 0 or self.now() - since >= self.gap:
            return 0.0
        extra = self.randbelow(max(1, int(self.gap * 1000))) / 1000
        return since + self.gap + extra - self.now()

    def before_redemption(self) -> float:
        return self._spread(self.last_signed)

    def before_signed_pass(self) -> float:
        return self._spread(self.last_redeemed)

    def signed(self) -> None:
        self.last_signed = self.now()

    def redeemed(self) -> None:
        self.last_redeemed = self.now()
