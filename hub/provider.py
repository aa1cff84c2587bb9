"""Payment providers: money in (deposits) and out (withdrawals).

The only provider shipped is `SimulatedProvider`, a documented simulation:
card networks, banks and PayPal cannot be reached from here, so it charges
and pays nothing, but it applies the real fee rules (mecene/money.py), answers
idempotently per request id like a real provider's API, and declines what a
real one would refuse, so the hub's paths for refusals are exercised:

- a deposit or payout above 1,000 € is declined (`limit_exceeded`);
- an amount ending in 13 cents is declined (`card_declined`) — the test
  "magic amount", in the manner of real providers' test cards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from mecene import money


@dataclass(frozen=True)
class ProviderResult:
    ok: bool
    reference: str
    reason: str = ""


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self, request_id: str, method: str, amount_cents: int, fee_cents: int
    ) -> ProviderResult: ...

    async def pay_out(self, request_id: str, amount_cents: int) -> ProviderResult: ...


class SimulatedProvider:
    name = "simulated"

    def _reference(self, kind: str, request_id: str) -> str:
        return f"sim-{kind}-" + hashlib.sha256(request_id.encode()).hexdigest()[:20]

    async def charge(
        self, request_id: str, method: str, amount_cents: int, fee_cents: int
    ) -> ProviderResult:
        if method not in money.METHODS:
            return ProviderResult(False, "", "unknown_method")
        if fee_cents != money.deposit_fee_cents(method, amount_cents):
            return ProviderResult(False, "", "fee_mismatch")
        if amount_cents > money.MAX_DEPOSIT_CENTS:
            return ProviderResult(False, "", "limit_exceeded")
        if amount_cents % 100 == 13:
            return ProviderResult(False, "", "card_declined")
        return ProviderResult(True, self._reference("charge", request_id))

    async def pay_out(self, request_id: str, amount_cents: int) -> ProviderResult:
        if amount_cents > money.MAX_DEPOSIT_CENTS:
            return ProviderResult(False, "", "limit_exceeded")
        return ProviderResult(True, self._reference("payout", request_id))
