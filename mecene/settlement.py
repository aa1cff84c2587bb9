"""The two documents of a month, each one type: the settlement the daemon
signs and the receipt the hub signs back (DESIGN.md, "Month lifecycle and
settlement"; PROTOCOL.md, "The settlement document").

Each is built from its fields, serialised as canonical JSON (the signature
covers exactly those bytes), parsed back with every rule checked, and
verified against its signer's key. `parse(serialise(x)) == x` for both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import keys, signing
from .encoding import b64u, canonical
from .money import CURRENCY
from .time import MONTH_RE

VERSION = 1
MAX_ALLOCATIONS = 10_000
MAX_CENTS = 10**9
SETTLEMENT_FIELDS = {"v", "account", "month", "currency", "spend_cents", "private", "allocations"}
# An unlinkable month (DESIGN.md, "Unlinkable contributions") says so; the
# field is absent otherwise, so a linkable document's bytes never changed.
UNLINKABLE_FIELDS = SETTLEMENT_FIELDS | {"unlinkable"}


class DocumentError(ValueError):
    """A document broke a rule; the message says which, for a person."""


@dataclass(frozen=True)
class Allocation:
    """One row of a settlement: a creator key, its cents, the thing's URL
    (None in a private settlement, which names creators only)."""

    creator: str
    cents: int
    url: str | None = None

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"creator": self.creator, "cents": self.cents}
        if self.url is not None:
            row["url"] = self.url
        return row


@dataclass(frozen=True)
class Settlement:
    account: str
    month: str
    spend_cents: int
    private: bool
    allocations: tuple[Allocation, ...]
    # The spend goes as blind-signed tokens redeemed to the creators without
    # the account: the document carries the spend and no allocation.
    unlinkable: bool = False

    def as_json(self) -> dict[str, Any]:
        doc = {
            "v": VERSION,
            "account": self.account,
            "month": self.month,
            "currency": CURRENCY,
            "spend_cents": self.spend_cents,
            "private": self.private,
            "allocations": [a.as_json() for a in self.allocations],
        }
        if self.unlinkable:
            doc["unlinkable"] = True
        return doc

    def serialise(self) -> bytes:
        if self.unlinkable:
            if self.allocations or not self.private:
                raise DocumentError("an unlinkable settlement is private and has no allocations")
        elif sum(a.cents for a in self.allocations) != self.spend_cents:
            raise DocumentError("the allocations do not add up to spend_cents")
        return canonical(self.as_json())

    def sign(self, sign: Callable[[bytes], str]) -> tuple[str, str]:
        """The canonical text and its signature (base64url), by the account's key."""
        text = self.serialise()
        return text.decode(), sign(text)

    @classmethod
    def parse(cls, text: str) -> Settlement:
        """The settlement `text` holds, every rule checked (DocumentError if one
        is broken): canonical form, the fields and nothing else, version and
        currency, the month, whole cents adding up, creator keys and things'
        URLs in their canonical forms, no URL in a private settlement."""
        doc = _load(text, "settlement")
        if set(doc) not in (SETTLEMENT_FIELDS, UNLINKABLE_FIELDS):
            raise DocumentError(
                "settlement: fields must be v, account, month, currency, spend_cents, private, "
                "allocations (and unlinkable: true for an unlinkable month)"
            )
        unlinkable = "unlinkable" in doc
        if unlinkable and doc["unlinkable"] is not True:
            raise DocumentError("settlement: unlinkable is true, or absent")
        if doc["v"] != VERSION or doc["currency"] != CURRENCY:
            raise DocumentError("settlement: version 1 in EUR only")
        if not isinstance(doc["account"], str):
            raise DocumentError("settlement: account is the signer's key")
        if not isinstance(doc["month"], str) or not MONTH_RE.match(doc["month"]):
            raise DocumentError("settlement: month is YYYY-MM")
        spend = doc["spend_cents"]
        if not _cents(spend) or spend > MAX_CENTS:
            raise DocumentError("settlement: spend_cents is a whole number of cents")
        if not isinstance(doc["private"], bool):
            raise DocumentError("settlement: private is true or false")
        rows = doc["allocations"]
        if not isinstance(rows, list) or len(rows) > MAX_ALLOCATIONS:
            raise DocumentError(f"settlement: allocations is a list of at most {MAX_ALLOCATIONS}")
        allocations = tuple(_allocation(row, doc["private"]) for row in rows)
        if unlinkable:
            if allocations or not doc["private"]:
                raise DocumentError(
                    "settlement: an unlinkable settlement is private and has no allocations"
                )
        elif sum(a.cents for a in allocations) != spend:
            raise DocumentError("settlement: the allocations do not add up to spend_cents")
        return cls(doc["account"], doc["month"], spend, doc["private"], allocations, unlinkable)

    @staticmethod
    def verify(account: str, text: str, signature: str) -> None:
        """signing.SignatureError unless `account` signed `text`."""
        signing.verify(account, text.encode(), signature)


@dataclass(frozen=True)
class Receipt:
    """What the hub accepted for a month: the settlement's hash and its spend,
    debited from the giver when it was received. Where the money went is
    decided afterwards by the hub's payout runs (credited, withheld, in
    escrow); the hub tells it as the settlement's outcome, not in the receipt.
    Version 2: version 1 also said what was credited and held at once."""

    hub: str
    account: str
    month: str
    sha256: str
    spend_cents: int
    received_at: int

    VERSION = 2

    FIELDS = (
        "hub",
        "account",
        "month",
        "sha256",
        "spend_cents",
        "received_at",
    )

    def serialise(self) -> bytes:
        return canonical({"v": self.VERSION, **{n: getattr(self, n) for n in self.FIELDS}})

    def sign(self, sign: Callable[[bytes], bytes]) -> tuple[str, str]:
        """The canonical text and the hub's signature of it (base64url)."""
        text = self.serialise()
        return text.decode(), b64u(sign(text))

    @classmethod
    def parse(cls, text: str) -> Receipt:
        doc = _load(text, "receipt")
        if set(doc) != {"v", *cls.FIELDS} or doc["v"] != cls.VERSION:
            raise DocumentError(
                f"receipt: version {cls.VERSION}, fields v, {', '.join(cls.FIELDS)}"
            )
        strings = ("hub", "account", "month", "sha256")
        if not all(isinstance(doc[name], str) for name in strings):
            raise DocumentError("receipt: hub, account, month and sha256 are text")
        numbers = ("spend_cents", "received_at")
        if not all(_cents(doc[name]) for name in numbers):
            raise DocumentError("receipt: amounts and the time are whole numbers ≥ 0")
        return cls(**{name: doc[name] for name in cls.FIELDS})

    @staticmethod
    def verify(hub: str, text: str, signature: str) -> None:
        """signing.SignatureError unless the hub's key `hub` signed `text`."""
        signing.verify(hub, text.encode(), signature)


@dataclass(frozen=True)
class TransferReceipt:
    """What the hub accepted for one direct transfer: its id and the hash of
    its request, the creator key and amount, what was credited at once and
    what was held, in the hub's month when it arrived."""

    hub: str
    account: str
    transfer: str
    sha256: str
    month: str
    creator: str
    cents: int
    credited_cents: int
    held_cents: int
    received_at: int

    FIELDS = (
        "hub",
        "account",
        "transfer",
        "sha256",
        "month",
        "creator",
        "cents",
        "credited_cents",
        "held_cents",
        "received_at",
    )

    def serialise(self) -> bytes:
        return canonical({"v": VERSION, **{name: getattr(self, name) for name in self.FIELDS}})

    def sign(self, sign: Callable[[bytes], bytes]) -> tuple[str, str]:
        """The canonical text and the hub's signature of it (base64url)."""
        text = self.serialise()
        return text.decode(), b64u(sign(text))

    @classmethod
    def parse(cls, text: str) -> TransferReceipt:
        doc = _load(text, "transfer receipt")
        if set(doc) != {"v", *cls.FIELDS} or doc["v"] != VERSION:
            raise DocumentError(f"transfer receipt: fields must be v, {', '.join(cls.FIELDS)}")
        strings = ("hub", "account", "transfer", "sha256", "month", "creator")
        if not all(isinstance(doc[name], str) for name in strings):
            raise DocumentError(f"transfer receipt: {', '.join(strings)} are text")
        numbers = ("cents", "credited_cents", "held_cents", "received_at")
        if not all(_cents(doc[name]) for name in numbers):
            raise DocumentError("transfer receipt: amounts and the time are whole numbers ≥ 0")
        return cls(**{name: doc[name] for name in cls.FIELDS})

    @staticmethod
    def verify(hub: str, text: str, signature: str) -> None:
        """signing.SignatureError unless the hub's key `hub` signed `text`."""
        signing.verify(hub, text.encode(), signature)


def _load(text: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        raise DocumentError(f"{what}: not JSON") from None
    if not keys.is_text(doc):
        raise DocumentError(f"{what}: it holds an unpaired surrogate, which is not text")
    try:
        same = isinstance(doc, dict) and canonical(doc) == text.encode()
    except ValueError:
        same = False
    if not same:
        raise DocumentError(f"{what}: not canonical JSON (sorted keys, no spaces, UTF-8)")
    return dict(doc)


def _cents(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _allocation(row: Any, private: bool) -> Allocation:
    if not isinstance(row, dict) or not {"creator", "cents"} <= set(row) <= {
        "creator",
        "cents",
        "url",
    }:
        raise DocumentError("settlement: an allocation is {creator, cents, url?}")
    if not _cents(row["cents"]):
        raise DocumentError("settlement: an allocation's cents is a whole number ≥ 0")
    try:
        creator = keys.creator_key(row["creator"])
        url = keys.thing_url(row["url"]) if "url" in row else None
    except ValueError as exc:
        raise DocumentError(f"settlement: {exc}") from None
    if url is not None and private:
        raise DocumentError("settlement: a private settlement names no URLs")
    return Allocation(creator, row["cents"], url)
