"""The hub's request messages, each as a build and parse pair (pure).

The daemon builds them (daemon/hublink.py, daemon/gifts/sending.py,
daemon/server.py's creator routes) and the hub parses them
(hub/requests.py turns a `WireError` into its refusal); both sides' bodies
go out as `mecene.signing.encode_body` writes them. The token messages are
in mecene/tokenwire.py, the settlement and receipts in mecene/settlement.py.

    POST /v1/settlements       SettlementRequest  {document, signature}
    POST /v1/deposits/quote    Quote              {method, amount_cents}
    POST /v1/deposits          DepositRequest     {id, method, amount_cents, fee_cents}
    POST /v1/transfers         TransferRequest    {id, creator, cents, url?}
    POST /v1/withdrawals       WithdrawalRequest  {id, amount_cents}
    POST /v1/claims            a creator key      {key}
    GET  /v1/creators/joined   JoinedList         {keys, nonprofit, escrow_months}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from . import keys, money, platforms
from .amounts import euros
from .encoding import canonical
from .settlement import DocumentError, Settlement
from .tokenwire import WireError, cents, client_id, transfer_cents


def _fields(body: Any, allowed: set[str], shape: str) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) - allowed:
        raise WireError("invalid", f"send {shape}")
    return body


# -- settlements -------------------------------------------------------------------------


@dataclass(frozen=True)
class SettlementRequest:
    text: str  # the canonical document, as signed
    signature: str
    document: Settlement

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def build_settlement(text: str, signature: str) -> dict[str, Any]:
    return {"document": text, "signature": signature}


def parse_settlement(body: Any) -> SettlementRequest:
    """{document: the canonical text, signature}; the document checked field
    by field (mecene.settlement). Its signature is checked by the hub, which
    knows the signer."""
    b = _fields(body, {"document", "signature"}, "{document: the canonical text, signature}")
    text, signature = b.get("document"), b.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str):
        raise WireError("invalid", "send {document: the canonical text, signature}")
    try:
        document = Settlement.parse(text)
    except DocumentError as exc:
        raise WireError("invalid", str(exc)) from None
    return SettlementRequest(text=text, signature=signature, document=document)


# -- deposits ----------------------------------------------------------------------------


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


def build_quote(method: str, amount_cents: int) -> dict[str, Any]:
    return {"method": method, "amount_cents": amount_cents}


def parse_quote(body: Any) -> Quote:
    """{method, amount_cents}: the deposit and its fee, today's."""
    b = _fields(body, {"method", "amount_cents", "fee_cents", "id"}, "{method, amount_cents}")
    method = b.get("method")
    if not isinstance(method, str) or method not in money.METHODS:
        raise WireError("invalid", f"method is one of {', '.join(money.METHODS)}")
    amount = cents(b.get("amount_cents"), "amount_cents")
    try:
        money.deposit_cents(amount)
    except money.OutOfBounds as exc:
        raise WireError("invalid", str(exc)) from None
    return Quote(method, amount, money.deposit_fee_cents(method, amount))


def build_deposit(
    deposit_id: str, method: str, amount_cents: int, fee_cents: int
) -> dict[str, Any]:
    return {
        "id": deposit_id,
        "method": method,
        "amount_cents": amount_cents,
        "fee_cents": fee_cents,
    }


class FeeChanged(WireError):
    """The fee the person confirmed is not today's: the quote to show again."""

    def __init__(self, quote: Quote) -> None:
        super().__init__(
            "invalid", f"the fee is {euros(quote.fee_cents)}: show it and confirm again"
        )
        self.quote = quote


def parse_deposit(body: Any) -> DepositRequest:
    """{id, method, amount_cents, fee_cents}: the fee the person confirmed
    must be today's fee (FeeChanged with today's quote if not)."""
    b = _fields(
        body, {"id", "method", "amount_cents", "fee_cents"}, "{id, method, amount_cents, fee_cents}"
    )
    deposit_id = client_id(b.get("id"))
    q = parse_quote({k: b.get(k) for k in ("method", "amount_cents")})
    if b.get("fee_cents") != q.fee_cents:
        raise FeeChanged(q)
    return DepositRequest(deposit_id, q)


# -- transfers and withdrawals -----------------------------------------------------------


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


def build_transfer(transfer_id: str, creator: str, amount: int, url: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": transfer_id, "creator": creator, "cents": amount}
    if url:
        body["url"] = url
    return body


def parse_transfer(body: Any) -> TransferRequest:
    """{id, creator, cents, url?}: a one-off amount to one creator key."""
    b = _fields(body, {"id", "creator", "cents", "url"}, "a transfer is {id, creator, cents, url?}")
    transfer_id = client_id(b.get("id"))
    amount = transfer_cents(b.get("cents"))
    try:
        key = keys.creator_key(b.get("creator"))
        url = keys.thing_url(b["url"]) if b.get("url") else None
    except ValueError as exc:
        raise WireError("invalid", str(exc)) from None
    return TransferRequest(transfer_id, key, amount, url)


@dataclass(frozen=True)
class WithdrawalRequest:
    id: str
    amount_cents: int


def build_withdrawal(withdrawal_id: str, amount_cents: int) -> dict[str, Any]:
    return {"id": withdrawal_id, "amount_cents": amount_cents}


def parse_withdrawal(body: Any) -> WithdrawalRequest:
    """{id, amount_cents}: at least the smallest withdrawal."""
    b = _fields(body, {"id", "amount_cents"}, "{id, amount_cents}")
    withdrawal_id = client_id(b.get("id"))
    amount = cents(b.get("amount_cents"), "amount_cents")
    if amount < money.MIN_WITHDRAWAL_CENTS:
        raise WireError(
            "invalid", f"the smallest withdrawal is {euros(money.MIN_WITHDRAWAL_CENTS)}"
        )
    return WithdrawalRequest(withdrawal_id, amount)


# -- creators ----------------------------------------------------------------------------


def build_claim(key: str) -> dict[str, Any]:
    return {"key": key}


def parse_claim(body: Any) -> str:
    """{key}: a creator key to prove, in its canonical form."""
    b = _fields(body, {"key"}, "{key}")
    try:
        key = keys.creator_key(b.get("key"))
    except ValueError as exc:
        raise WireError("invalid", f"key: {exc}") from None
    if key.startswith("flattr:"):
        raise WireError(
            "not_claimable", "flattr ids are issued by the hub (POST /v1/flattr-ids), not claimed"
        )
    scheme = key.partition(":")[0]
    if scheme == "site" and platforms.site_proof(key.partition(":")[2]) is None:
        # The table names a proof page for some shared hosts only (Medium's
        # profile); a publication's subdomain has none the writer alone writes.
        raise WireError(
            "not_claimable",
            "this part of a shared host cannot be proved yet: money for it waits in escrow",
        )
    platform = platforms.platforms().get(scheme)
    if platform is not None and not platform.proof_page:
        # The table names no field only the owner writes on this platform yet.
        raise WireError(
            "not_claimable",
            f"{platform.name} keys cannot be proved yet: money for them waits in escrow",
        )
    return key


@dataclass(frozen=True)
class JoinedList:
    """Every proved creator key, those of non-profits (no fee), and how long
    money waits in escrow: published whole, so that a daemon never asks about
    one key (which would tell the hub what its person reads)."""

    keys: tuple[str, ...]
    nonprofit: tuple[str, ...]
    escrow_months: int


MAX_JOINED_KEYS = 5_000_000


def build_joined(joined: JoinedList) -> dict[str, Any]:
    return {
        "keys": list(joined.keys),
        "nonprofit": list(joined.nonprofit),
        "escrow_months": joined.escrow_months,
    }


def parse_joined(data: Any) -> JoinedList:
    """The hub's list, checked whole; a non-profit key that has not joined is dropped."""
    ks = data.get("keys") if isinstance(data, dict) else None
    months = data.get("escrow_months") if isinstance(data, dict) else None
    nonprofit = data.get("nonprofit", []) if isinstance(data, dict) else None
    if (
        not isinstance(ks, list)
        or len(ks) > MAX_JOINED_KEYS
        or not all(isinstance(k, str) for k in ks)
        or not isinstance(months, int)
        or isinstance(months, bool)
        or not isinstance(nonprofit, list)
        or not all(isinstance(k, str) for k in nonprofit)
    ):
        raise WireError("invalid", "the hub's list of joined creators is malformed")
    known = set(ks)
    return JoinedList(tuple(ks), tuple(k for k in nonprofit if k in known), months)
