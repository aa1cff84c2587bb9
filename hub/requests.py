"""What arrives at the hub, checked at the edge into typed requests.

The messages and their parsing are the protocol's (mecene/messages.py, and
mecene/tokenwire.py for tokens); here a message that does not parse becomes
the hub's refusal, HubError(code, sentence). The rooms (hub/service.py)
receive only these values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mecene import messages
from mecene.messages import (
    DepositRequest,
    Quote,
    SettlementRequest,
    TransferRequest,
    WithdrawalRequest,
)
from mecene.time import MONTH_RE
from mecene.tokenwire import WireError

from .errors import HubError

__all__ = [
    "DepositRequest",
    "Quote",
    "SettlementRequest",
    "TransferRequest",
    "WithdrawalRequest",
]

T = TypeVar("T")


def _checked(parse: Callable[[Any], T], body: Any) -> T:
    try:
        return parse(body)
    except messages.FeeChanged as exc:
        raise HubError(exc.code, str(exc), quote=exc.quote.view()) from None
    except WireError as exc:
        raise HubError(exc.code, str(exc)) from None


def month(value: str) -> str:
    if not MONTH_RE.match(value):
        raise HubError("invalid", "a month is YYYY-MM")
    return value


def settlement(body: Any) -> SettlementRequest:
    return _checked(messages.parse_settlement, body)


def quote(body: Any) -> Quote:
    return _checked(messages.parse_quote, body)


def deposit(body: Any) -> DepositRequest:
    return _checked(messages.parse_deposit, body)


def transfer(body: Any) -> TransferRequest:
    return _checked(messages.parse_transfer, body)


def withdrawal(body: Any) -> WithdrawalRequest:
    return _checked(messages.parse_withdrawal, body)


def claim(body: Any) -> str:
    return _checked(messages.parse_claim, body)
