"""What arrives at the hub, checked at the edge into typed requests (pure).

Each function takes the decoded JSON body and returns a frozen value or
raises HubError("invalid", sentence). The hub's rooms (hub/service.py) receive only
these values, as the daemon's core receives daemon/validate.py's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from mecene import keys, money
from mecene.amounts import euros
from mecene.encoding import canonical
from mecene.settlement import DocumentError, Settlement
from mecene.time import MONTH_RE
from mecene.tokenwire import CLIENT_ID_RE

from .errors import HubError

_ID_RE = CLIENT_ID_RE


@dataclass(frozen=True)
class SettlementRequest:
    text: str  # the canonical document, as signed
    signature: str
    document: Settlement

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class Quote:
    method: str
    amount_cents: int
    fee_cents: int

    @property
    def total_cents(self) -> int:
        return self.amount_cents + self.fee_cents

    def view(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "amount_cents": self.amount_cents,
            "fee_cents": self.fee_cents,
            "total_cents": self.total_cents,
        }


@dataclass(frozen=True)
class DepositRequest:
    id: str
    quote: Quote


@dataclass(frozen=True)
class TransferRequest:
    id: str
    creator: str
    cents: int
    url: str | None

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "creator": self.creator, "cents": self.cents, "url": self.url}

    @property
    def sha256(self) -> str:
        """What makes two sendings of one id the same transfer."""
        return hashlib.sha256(canonical(self.view())).hexdigest()


@dataclass(frozen=True)
class WithdrawalRequest:
    id: str
    amount_cents: int


def _fields(body: Any, allowed: set[str], shape: str) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) - allowed:
        raise HubError("invalid", f"send {shape}")
    return body


def client_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise HubError("invalid", "id is 8 to 64 characters of [A-Za-z0-9_-]")
    return value


def _cents(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise HubError("invalid", f"{name} is a whole number of cents")
    return value


def transfer_cents(value: Any) -> int:
    """A direct transfer's amount, within the money rules' bounds."""
    try:
        return money.transfer_cents(_cents(value, "cents"))
    except money.OutOfBounds as exc:
        raise HubError("invalid", str(exc)) from None


def month(value: str) -> str:
    if not MONTH_RE.match(value):
        raise HubError("invalid", "a month is YYYY-MM")
    return value


def settlement(body: Any) -> SettlementRequest:
    """{document: the canonical text, signature}; the document checked field
    by field (mecene.settlement). Its signature is checked by the core, which
    knows the signer."""
    b = _fields(body, {"document", "signature"}, "{document: the canonical text, signature}")
    text, signature = b.get("document"), b.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str):
        raise HubError("invalid", "send {document: the canonical text, signature}")
    try:
        document = Settlement.parse(text)
    except DocumentError as exc:
        raise HubError("invalid", str(exc)) from None
    return SettlementRequest(text=text, signature=signature, document=document)


def quote(body: Any) -> Quote:
    """{method, amount_cents}: the deposit and its fee, today's."""
    b = _fields(body, {"method", "amount_cents", "fee_cents", "id"}, "{method, amount_cents}")
    method = b.get("method")
    if not isinstance(method, str) or method not in money.METHODS:
        raise HubError("invalid", f"method is one of {', '.join(money.METHODS)}")
    amount = _cents(b.get("amount_cents"), "amount_cents")
    try:
        money.deposit_cents(amount)
    except money.OutOfBounds as exc:
        raise HubError("invalid", str(exc)) from None
    return Quote(method, amount, money.deposit_fee_cents(method, amount))


def deposit(body: Any) -> DepositRequest:
    """{id, method, amount_cents, fee_cents}: the fee the person confirmed
    must be today's fee."""
    b = _fields(
        body, {"id", "method", "amount_cents", "fee_cents"}, "{id, method, amount_cents, fee_cents}"
    )
    deposit_id = client_id(b.get("id"))
    q = quote({k: b.get(k) for k in ("method", "amount_cents")})
    if b.get("fee_cents") != q.fee_cents:
        raise HubError(
            "invalid",
            f"the fee is {euros(q.fee_cents)}: show it and confirm again",
            quote=q.view(),
        )
    return DepositRequest(deposit_id, q)


def transfer(body: Any) -> TransferRequest:
    """{id, creator, cents, url?}: a one-off amount to one creator key."""
    b = _fields(body, {"id", "creator", "cents", "url"}, "a transfer is {id, creator, cents, url?}")
    transfer_id = client_id(b.get("id"))
    cents = transfer_cents(b.get("cents"))
    try:
        key = keys.creator_key(b.get("creator"))
        url = keys.thing_url(b["url"]) if b.get("url") else None
    except ValueError as exc:
        raise HubError("invalid", str(exc)) from None
    return TransferRequest(transfer_id, key, cents, url)


def withdrawal(body: Any) -> WithdrawalRequest:
    """{id, amount_cents}: at least the smallest withdrawal."""
    b = _fields(body, {"id", "amount_cents"}, "{id, amount_cents}")
    withdrawal_id = client_id(b.get("id"))
    amount = _cents(b.get("amount_cents"), "amount_cents")
    if amount < money.MIN_WITHDRAWAL_CENTS:
        raise HubError("invalid", f"the smallest withdrawal is {euros(money.MIN_WITHDRAWAL_CENTS)}")
    return WithdrawalRequest(withdrawal_id, amount)


def claim(body: Any) -> str:
    """{key}: a creator key to prove, in its canonical form."""
    b = _fields(body, {"key"}, "{key}")
    try:
        key = keys.creator_key(b.get("key"))
    except ValueError as exc:
        raise HubError("invalid", f"key: {exc}") from None
    if key.startswith("flattr:"):
        raise HubError(
            "not_claimable", "flattr ids are issued by the hub (POST /v1/flattr-ids), not claimed"
        )
    return key
