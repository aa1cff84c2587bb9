"""The token path's wire messages, each as a build and parse pair (pure).

The daemon builds what the hub parses and parses what the hub builds; both
import these, so the two sides cannot drift apart (tests/mecene/test_tokenwire.py
checks that `parse(build(x)) == x` for each). A token key's id is bytes
everywhere in Python; it is written as 64 hex digits on the wire and in the
databases, by these functions and by the stores' row codecs only.

    GET  /v1/token-keys/{month}  KeyDirectory   {hub, month, token_type, variant, challenge,
                                                  redeemable_until, keys: [{id, denomination_cents,
                                                  public_key}], signature}
    POST /v1/tokens              IssueRequest   {month, tokens: [{key, request}],
                                                  transfer?: {id, cents}}
                                 IssueAnswer    {month, blind_signatures: [...], receipt,
                                                  signature}
    POST /v1/tokens/redeem       Redemption     {token, prefix, creator}

A parse raises WireError with the error code the hub answers with
("invalid" or "bad_token") and a sentence saying what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from . import blindrsa, keys, money, signing, tokens
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
    # The SHA-256 of the canonical directory the hub signed (hex): what every
    # issuance receipt names and a daemon pins per month (key consistency).
    sha256: str = ""

    def by_id(self) -> dict[bytes, DirectoryKey]:
        return {k.id: k for k in self.keys}

    def by_cents(self) -> dict[int, DirectoryKey]:
        return {k.denomination_cents: k for k in self.keys}


def build_directory(directory: KeyDirectory, hub: str) -> dict[str, Any]:
    """The directory as the hub signs it (`sign_directory`)."""
    return {
        "hub": hub,
        "month": directory.month,
        "token_type": tokens.TOKEN_TYPE,
        "variant": tokens.VARIANT.name,
        "challenge": b64u(tokens.challenge()),
        "redeemable_until": directory.redeemable_until,
        "keys": [
            {
                "id": key_hex(k.id),
                "denomination_cents": k.denomination_cents,
                "public_key": b64u(tokens.pss_spki(k.public)),
            }
            for k in directory.keys
        ],
    }


def sign_directory(body: dict[str, Any], sign: Any) -> dict[str, Any]:
    """The directory with the hub's Ed25519 signature of its canonical form."""
    return {**body, "signature": b64u(sign(canonical(body)))}


def directory_sha256(data: dict[str, Any]) -> str:
    """The hash a directory is pinned and named by: of its canonical form
    without the signature (Ed25519 signatures are deterministic, but the
    hash must not depend on them)."""
    return hashlib.sha256(
        canonical({k: v for k, v in data.items() if k != "signature"})
    ).hexdigest()


def check_signed(data: dict[str, Any], hub: str, what: str) -> None:
    """`data` names `hub` and carries its Ed25519 signature of the canonical
    JSON of every other member (`sign_directory`); WireError if not."""
    signature = data.get("signature")
    if data.get("hub") != hub or not isinstance(signature, str):
        raise WireError("invalid", f"the {what} are not signed by this hub")
    body = {k: v for k, v in data.items() if k != "signature"}
    try:
        signing.verify(hub, canonical(body), signature)
    except signing.SignatureError:
        raise WireError("invalid", f"the hub's signature of its {what} does not check") from None


def build_gateway_keys(config: bytes, hub: str, sign: Any) -> dict[str, Any]:
    """The hub's Oblivious HTTP key configuration (mecene/ohttp.py) as
    `application/ohttp-keys` content (a 2-byte length, then the
    configuration: RFC 9458 section 3.2), base64url, signed by the hub: a
    relay cannot hand a daemon a gateway key of its own."""
    return sign_directory({"hub": hub, "keys": b64u(len(config).to_bytes(2, "big") + config)}, sign)


def parse_gateway_keys(data: Any, hub: str) -> bytes:
    """The one key configuration in the hub's signed `GET /v1/ohttp-keys`
    answer (WireError if it is not signed by `hub`, or malformed)."""
    if not isinstance(data, dict):
        raise WireError("invalid", "the gateway's keys are malformed")
    check_signed(data, hub, "gateway keys")
    keys_ = data.get("keys")
    try:
        if not isinstance(keys_, str):
            raise ValueError(keys_)
        raw = unb64u(keys_)
    except ValueError:
        raise WireError("invalid", "the gateway's keys are not base64url") from None
    if len(raw) < 2 or int.from_bytes(raw[:2], "big") != len(raw) - 2:
        raise WireError("invalid", "the gateway's key configurations do not add up")
    return raw[2:]


def parse_directory(month: str, data: Any, hub: str) -> KeyDirectory:
    """The month's key, checked: signed by the hub `hub` (its pinned key),
    its id RFC 9578's `token_key_id` of its key, one key of the one
    denomination, in the month asked for (WireError if not)."""
    if not isinstance(data, dict) or data.get("month") != month:
        raise WireError("invalid", "the hub's token keys are for another month")
    check_signed(data, hub, "token keys")
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
    return KeyDirectory(
        month,
        until if isinstance(until, str) else "",
        tuple(found.values()),
        directory_sha256(data),
    )


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
    return IssueRequest(month, tuple(out), transfer, issue_sha256(body))


def issue_sha256(body: dict[str, Any]) -> str:
    """What names an issuance request (the hub's `IssueRequest.sha256`)."""
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True)
class IssueReceipt:
    """What the hub signed for one issuance: whose request (its hash), how
    many tokens, and under which key directory (its hash). Two people's
    receipts naming two directories for one month are the hub's own signed
    proof that it handed out keys that tell them apart."""

    hub: str
    account: str
    ref: str
    month: str
    sha256: str
    tokens: int
    token_keys: str

    VERSION = 1
    FIELDS = ("hub", "account", "ref", "month", "sha256", "tokens", "token_keys")

    def sign(self, sign: Any) -> tuple[str, str]:
        text = canonical({"v": self.VERSION, **{n: getattr(self, n) for n in self.FIELDS}})
        return text.decode(), b64u(sign(text))

    @classmethod
    def check(cls, hub: str, text: Any, signature: Any) -> IssueReceipt:
        """The receipt, signed by `hub` (WireError if not, or malformed)."""
        if not isinstance(text, str) or not isinstance(signature, str):
            raise WireError("invalid", "the hub's answer holds no signed receipt")
        try:
            signing.verify(hub, text.encode(), signature)
        except signing.SignatureError:
            raise WireError("invalid", "the hub's issuance receipt is not signed by it") from None
        try:
            doc = json.loads(text)
        except ValueError:
            raise WireError("invalid", "the issuance receipt is not JSON") from None
        if not isinstance(doc, dict) or set(doc) != {"v", *cls.FIELDS} or doc["v"] != 1:
            raise WireError("invalid", "the issuance receipt is malformed")
        if not isinstance(doc["tokens"], int) or not all(
            isinstance(doc[n], str) for n in cls.FIELDS if n != "tokens"
        ):
            raise WireError("invalid", "the issuance receipt is malformed")
        return cls(**{n: doc[n] for n in cls.FIELDS})


@dataclass(frozen=True)
class IssueAnswer:
    month: str
    blind_signatures: tuple[bytes, ...]
    receipt: str = ""  # IssueReceipt's canonical text
    signature: str = ""


def build_issue_answer(answer: IssueAnswer) -> dict[str, Any]:
    return {
        "month": answer.month,
        "blind_signatures": [b64u(s) for s in answer.blind_signatures],
        "receipt": answer.receipt,
        "signature": answer.signature,
    }


def parse_issue_answer(data: Any, count: int) -> IssueAnswer:
    """The hub's blind signatures, one per token asked for, in order, and
    its signed receipt (checked by `IssueReceipt.check`)."""
    sigs = data.get("blind_signatures") if isinstance(data, dict) else None
    if not isinstance(sigs, list) or len(sigs) != count:
        raise WireError("invalid", "the hub's answer does not hold one signature per token")
    assert isinstance(data, dict)
    month, receipt, signature = data.get("month"), data.get("receipt"), data.get("signature")
    return IssueAnswer(
        month if isinstance(month, str) else "",
        tuple(_b64(s, "a blind signature") for s in sigs),
        receipt if isinstance(receipt, str) else "",
        signature if isinstance(signature, str) else "",
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
