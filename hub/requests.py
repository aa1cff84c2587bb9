"""What arrives at the hub, checked at the edge into typed requests.

The messages and their parsing are the protocol's (mecene/messages.py, and
mecene/tokenwire.py for tokens); here a message that does not parse becomes
the hub's refusal, HubError(code, sentence). The rooms (hub/service.py)
receive only these values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from mecene import keys as key_rules
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


def json_object(raw: bytes) -> dict[str, Any]:
    """A request's body as a JSON object of text (HubError if not): the
    HTTP routes' and the Oblivious HTTP gateway's alike."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise HubError("bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HubError("invalid", "the body is a JSON object")
    if not key_rules.is_text(body):
        raise HubError("bad_json", "the body holds an unpaired surrogate, which is not text")
    return body


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
