"""The token path's wire messages, each as a build and parse pair (pure).

The daemon builds what the hub parses and parses what the hub builds; both
import these, so the two sides cannot drift apart (tests/mecene/test_tokenwire.py
checks that `parse(build(x)) == x` for each). A token key's id is bytes
everywhere in Python; it is written as 64 hex digits on the wire and in the
databases, by these functions and by the stores' row codecs only.

    GET  /v1/token-keys/{month}  KeyDirectory   {month, token_type, variant, challenge,
                                                  redeemable_until, keys: [{id, denomination_cents,
                                                  public_key}]}
    POST /v1/tokens              IssueRequest   {month, tokens: [{key, request}],
                                                  transfer?: {id, cents}}
                                 IssueAnswer    {month, blind_signatures: [...]}
    POST /v1/tokens/redeem       Redemption     {token, prefix, creator}

A parse raises WireError with the error code the hub answers with
("invalid" or "bad_token") and a sentence saying what is wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from . import blindrsa, keys, money, tokens
from .encoding import b64u, canonical, unb64u
from .time import MONTH_RE

# The ids a daemon gives what it sends the hub (a deposit, a transfer, a withdrawal).
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


class WireError(ValueError):
    """A message that does not parse; `code` is the error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def client_id(value: Any) -> str:
    """The id a daemon gave what it sends (mecene/messages.py uses it too)."""
    if not isinstance(value, str) or not CLIENT_ID_RE.match(value):
        raise WireError("invalid", "id is 8 to 64 characters of [A-Za-z0-9_-]")
    return value


def cents(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError("invalid", f"{name} is a whole number of cents")
    return value


def transfer_cents(value: Any) -> int:
    """A direct transfer's amount, within the money rules' bounds."""
    try:
        return money.transfer_cents(cents(value, "cents"))
    except money.OutOfBounds as exc:
        raise WireError("invalid", str(exc)) from None


def key_hex(kid: bytes) -> str:
    """A token key's id as the wire and the databases write it."""
    return kid.hex()


def key_bytes(text: Any, name: str = "key") -> bytes:
    """A token key's id from its 64 hex digits."""
    if not isinstance(text, str) or not _HEX64_RE.match(text):
        raise WireError("invalid", f"{name} is a token key's id: 64 hex digits")
    return bytes.fromhex(text)


def _b64(value: Any, name: str, code: str = "invalid") -> bytes:
    if not isinstance(value, str):
        raise WireError(code, f"{name} is base64url")
    try:
        return unb64u(value)
    except ValueError:
        raise WireError(code, f"{name} is base64url") from None


# -- the month's keys ----------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryKey:
    id: bytes
    denomination_cents: int
    public: rsa.RSAPublicKey


@dataclass(frozen=True)
class KeyDirectory:
    """A month's token keys as the hub publishes them, one per denomination."""

    month: str
    redeemable_until: str
    keys: tuple[DirectoryKey, ...]

    def by_id(self) -> dict[bytes, DirectoryKey]:
        return {k.id: k for k in self.keys}

    def by_cents(self) -> dict[int, DirectoryKey]:
        return {k.denomination_cents: k for k in self.keys}


def build_directory(directory: KeyDirectory) -> dict[str, Any]:
    return {
        "month": directory.month,
        "token_type": tokens.TOKEN_TYPE,
        "variant": tokens.VARIANT.name,
        "challenge": b64u(tokens.challenge()),
        "redeemable_until": directory.redeemable_until,
        "keys": [
            {
                "id": key_hex(k.id),
                "denomination_cents": k.denomination_cents,
                "public_key": b64u(tokens.spki(k.public)),
            }
            for k in directory.keys
        ],
    }


def parse_directory(month: str, data: Any) -> KeyDirectory:
    """The month's key, checked: its id the SHA-256 of its key, one key of
    the one denomination, in the month asked for (WireError if not)."""
    if not isinstance(data, dict) or data.get("month") != month:
        raise WireError("invalid", "the hub's token keys are for another month")
    if data.get("token_type") != tokens.TOKEN_TYPE or data.get("variant") != tokens.VARIANT.name:
        raise WireError("invalid", "the hub's token keys are of another kind")
    rows = data.get("keys")
    if not isinstance(rows, list):
        raise WireError("invalid", "the hub's token keys are malformed")
    found: dict[bytes, DirectoryKey] = {}
    for row in rows:
        try:
            public = tokens.load_public(unb64u(row["public_key"]))
            kid, cents = key_bytes(row["id"]), int(row["denomination_cents"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError("invalid", f"a token key is malformed: {exc}") from None
        if tokens.key_id(public) != kid:
            raise WireError("invalid", "a token key's id is not its key's")
        found[kid] = DirectoryKey(kid, cents, public)
    if [k.denomination_cents for k in found.values()] != [tokens.DENOMINATION]:
        raise WireError("invalid", "the hub does not publish one key of the one denomination")
    until = data.get("redeemable_until")
    return KeyDirectory(month, until if isinstance(until, str) else "", tuple(found.values()))


# -- issuance ------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueRequest:
    """Blinded token requests for a month's spend, or for a direct transfer
    (its client id and cents, debited when they are signed)."""

    month: str
    requests: tuple[tuple[bytes, bytes], ...]  # (key id, blinded message)
    transfer: tuple[str, int] | None = None
    sha256: str = ""  # of the canonical body: what makes a resend the same request

    @property
    def ref(self) -> str:
        """What the hub issues once per account: the month's spend, or one transfer."""
        return f"transfer:{self.transfer[0]}" if self.transfer else f"month:{self.month}"


def build_issue(
    month: str, pending: Sequence[tokens.Pending], transfer: tuple[str, int] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "month": month,
        "tokens": [{"key": key_hex(p.key_id), "request": b64u(p.request())} for p in pending],
    }
    if transfer is not None:
        body["transfer"] = {"id": transfer[0], "cents": transfer[1]}
    return body


def parse_issue(body: Any) -> IssueRequest:
    """{month, tokens: [{key, request}], transfer?: {id, cents}}: the key's id
    (hex) and the TokenRequest (base64url) of each token; for a direct
    transfer, its client id and amount."""
    shape = "{month, tokens: [{key, request}], transfer?: {id, cents}}"
    if not isinstance(body, dict) or set(body) not in (
        {"month", "tokens"},
        {"month", "tokens", "transfer"},
    ):
        raise WireError("invalid", f"send {shape}")
    month, rows = body["month"], body["tokens"]
    transfer = None
    if "transfer" in body:
        t = body["transfer"]
        if not isinstance(t, dict) or set(t) != {"id", "cents"}:
            raise WireError("invalid", "transfer is {id, cents}")
        amount = transfer_cents(t["cents"])
        transfer = (client_id(t["id"]), amount)
    if not isinstance(month, str) or not MONTH_RE.match(month):
        raise WireError("invalid", "month is YYYY-MM")
    if not isinstance(rows, list) or not 1 <= len(rows) <= tokens.MAX_TOKENS:
        raise WireError("invalid", f"tokens is a list of 1 to {tokens.MAX_TOKENS} token requests")
    out = []
    for row in rows:
        if not isinstance(row, dict) or set(row) != {"key", "request"}:
            raise WireError("invalid", f"send {shape}")
        raw = _b64(row["request"], "request")
        kid = key_bytes(row["key"])
        try:
            truncated, blinded = tokens.parse_request(raw)
        except tokens.TokenError as exc:
            raise WireError("invalid", str(exc)) from None
        if truncated != kid[-1]:
            raise WireError("invalid", "a token request's truncated key id names another key")
        out.append((kid, blinded))
    return IssueRequest(month, tuple(out), transfer, hashlib.sha256(canonical(body)).hexdigest())


@dataclass(frozen=True)
class IssueAnswer:
    month: str
    blind_signatures: tuple[bytes, ...]


def build_issue_answer(answer: IssueAnswer) -> dict[str, Any]:
    return {"month": answer.month, "blind_signatures": [b64u(s) for s in answer.blind_signatures]}


def parse_issue_answer(data: Any, count: int) -> IssueAnswer:
    """The hub's blind signatures, one per token asked for, in order."""
    sigs = data.get("blind_signatures") if isinstance(data, dict) else None
    if not isinstance(sigs, list) or len(sigs) != count:
        raise WireError("invalid", "the hub's answer does not hold one signature per token")
    month = data.get("month") if isinstance(data, dict) else None
    return IssueAnswer(
        month if isinstance(month, str) else "",
        tuple(_b64(s, "a blind signature") for s in sigs),
    )


# -- redemption ----------------------------------------------------------------------


@dataclass(frozen=True)
class Redemption:
    """A token, its message prefix and the creator key it goes to."""

    token: tokens.Token
    prefix: bytes
    creator: str


def build_redemption(r: Redemption) -> dict[str, Any]:
    return {"token": b64u(r.token.serialise()), "prefix": b64u(r.prefix), "creator": r.creator}


def parse_redemption(body: Any) -> Redemption:
    """{token, prefix, creator}: the token and its message prefix
    (base64url), and the creator key it goes to."""
    if not isinstance(body, dict) or set(body) != {"token", "prefix", "creator"}:
        raise WireError("invalid", "send {token, prefix, creator}")
    try:
        token = tokens.Token.parse(_b64(body["token"], "token"))
    except tokens.TokenError as exc:
        raise WireError("bad_token", str(exc)) from None
    prefix = _b64(body["prefix"], "prefix")
    if len(prefix) != blindrsa.PREFIX_LEN:
        raise WireError("bad_token", "the prefix is 32 bytes")
    try:
        creator = keys.creator_key(body["creator"])
    except ValueError as exc:
        raise WireError("invalid", str(exc)) from None
    return Redemption(token, prefix, creator)
