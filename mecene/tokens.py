"""Unlinkable contributions' tokens: the Privacy Pass publicly verifiable
token (RFC 9578 section 6, token type 2) over RSA blind signatures
(mecene/blindrsa.py), its one value, and how a month's spend is cut into
tokens.

A token is worth DENOMINATION, in its key's month. The daemon
builds one per piece of an allocation, blinds it and has the hub sign it
against the month's spend; later it redeems it to the allocation's creator
key with no account and no signature of its own. The hub sees a valid,
unspent token of some denomination and month: not whose it was.

The wire forms are RFC 9578's:

    struct {                          struct {
      uint16 token_type = 0x0002;       uint16 token_type = 0x0002;
      uint8 nonce[32];                  uint8 truncated_token_key_id;
      uint8 challenge_digest[32];       uint8 blinded_msg[Nk];
      uint8 token_key_id[32];         } TokenRequest;
      uint8 authenticator[Nk];
    } Token;

with Nk = 256 (RSA-2048) and `token_key_id` as RFC 9578 section 6.5 defines
it: the SHA-256 of the key's SubjectPublicKeyInfo with the RSASSA-PSS
algorithm identifier (SHA-384, MGF1 with SHA-384, 48-byte salt;
`SerializeToPKIXWithPSS`, `pss_spki`), tested against the RFC's vector.
The signed message is the token's first four fields.

One difference from RFC 9578, decided in issue 17: the signature variant is
RSABSSA-SHA384-PSS-Randomized, as DESIGN.md says, where RFC 9578's type 2
uses the Deterministic one. The randomized variant's 32-byte prefix is sent
beside the token at redemption (`prefix`); everything else is the RFC's.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import blindrsa

TOKEN_TYPE = 0x0002
NK = 256  # RSA-2048
KEY_BITS = 2048
VARIANT = blindrsa.PSS_RANDOMIZED
ISSUER_NAME = b"mecene"

# Every token is worth this, in every month (issue 27): with one value, a
# token is one of all the month's tokens, whoever had it, and how many a
# person had says no more than their spend. Ten cents: the hub's 10 % fee
# on a token is exactly one cent, so no token escapes it (with 1- and 2-cent
# tokens it rounded to nothing); a month of 5 € is 50 tokens to sign and
# redeem, not 500; and a creator's share is off by at most one token, by
# chance and never on average (`apportion`).
DENOMINATION = 10
# In one issuance: 400 €, a request well under the hub's 2 MiB bodies. An
# unlinkable month spends at most this much (the rest stays on the balance);
# a gift as tokens is at most this much.
MAX_TOKENS = 4000


class TokenError(ValueError):
    """A token or a token request that is malformed or does not check."""


def challenge() -> bytes:
    """The TokenChallenge (RFC 9577 section 2.1) every token answers: type 2,
    issuer "mecene", no redemption context, no origin. Tokens are bound to
    the hub's key of their month and denomination, not to a context."""
    return (
        struct.pack(">H", TOKEN_TYPE)
        + struct.pack(">H", len(ISSUER_NAME))
        + ISSUER_NAME
        + b"\x00"  # redemption_context<0..32>: empty
        + struct.pack(">H", 0)  # origin_info<0..2^16-1>: empty
    )


CHALLENGE_DIGEST = hashlib.sha256(challenge()).digest()


def whole(cents: int) -> int:
    """How many tokens `cents` buys: whole tokens only, at most MAX_TOKENS;
    what is left over is not spent."""
    if cents < 0:
        raise ValueError("an amount is never negative")
    return min(cents // DENOMINATION, MAX_TOKENS)


def apportion(
    shares: Sequence[tuple[str, int]], count: int, randbelow: Callable[[int], int]
) -> dict[str, int]:
    """`count` tokens among the shares (creator, cents) by randomised
    rounding: each creator's exact part of them is `count * cents / total`;
    it gets the whole tokens of that part, and one more with the probability
    of the fraction left, drawn by systematic sampling (one uniform draw from
    `randbelow`, then every whole step): the total is exactly `count`, and
    each creator's expected number of tokens is exactly its part (to one
    part in 2**32, the draw's grain)."""
    total = sum(cents for _c, cents in shares)
    if count < 0 or any(cents < 0 for _c, cents in shares):
        raise ValueError("no negative share or count")
    if total == 0:
        if count:
            raise ValueError("tokens for no share")
        return {}
    parts = [(creator, Fraction(cents * count, total)) for creator, cents in shares]
    out = {creator: int(part) for creator, part in parts}
    grain = 2**32
    point = Fraction(randbelow(grain), grain)
    reached = Fraction(0)
    for creator, part in parts:
        reached += part - int(part)
        while point < reached:
            out[creator] += 1
            point += 1
    assert sum(out.values()) == count, "the fractions add up to a whole number of tokens"
    return {creator: n for creator, n in out.items() if n}


def spki(public: rsa.RSAPublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# RFC 9578 section 6.5's AlgorithmIdentifier: id-RSASSA-PSS (1.2.840.113549.1.1.10)
# with RSASSA-PSS-params {hashAlgorithm sha384, maskGenAlgorithm mgf1(sha384),
# saltLength 48}, DER. `cryptography` reads such a key but writes only the
# plain rsaEncryption form, so the one fixed header is written here, as the
# RFC's reference implementations do (the test compares the result with the
# RFC's `pkS`).
PSS_ALGORITHM = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c"
    "301a06092a864886f70d010108300d06096086480165030402020500a203020130"
)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def pss_spki(public: rsa.RSAPublicKey) -> bytes:
    """SerializeToPKIXWithPSS (RFC 9578 section 6.5): the key's
    SubjectPublicKeyInfo under the RSASSA-PSS algorithm identifier, DER.
    What the hub publishes, and what `token_key_id` hashes."""
    pkcs1 = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return _der(0x30, PSS_ALGORITHM + _der(0x03, b"\x00" + pkcs1))


def key_id(public: rsa.RSAPublicKey) -> bytes:
    """token_key_id (RFC 9578 section 6.5): SHA-256 of `pss_spki`."""
    return hashlib.sha256(pss_spki(public)).digest()


def plain_key_id(public: rsa.RSAPublicKey) -> bytes:
    """The id versions before issue 27 gave a key (the SHA-256 of its plain
    rsaEncryption SubjectPublicKeyInfo): tokens they signed carry it, and
    still redeem until their month expires (the hub keeps it per key)."""
    return hashlib.sha256(spki(public)).digest()


def load_public(der: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_der_public_key(der)
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != KEY_BITS:
        raise TokenError("a token key is an RSA-2048 public key")
    return key


@dataclass(frozen=True)
class Token:
    nonce: bytes
    key_id: bytes
    authenticator: bytes
    challenge_digest: bytes = CHALLENGE_DIGEST

    def token_input(self) -> bytes:
        return token_input(self.nonce, self.key_id, self.challenge_digest)

    def serialise(self) -> bytes:
        return self.token_input() + self.authenticator

    @classmethod
    def parse(cls, raw: bytes) -> Token:
        if len(raw) != 2 + 32 + 32 + 32 + NK:
            raise TokenError(f"a token is {2 + 96 + NK} bytes")
        (kind,) = struct.unpack(">H", raw[:2])
        if kind != TOKEN_TYPE:
            raise TokenError("a token here is of type 2 (publicly verifiable, blind RSA)")
        digest = raw[34:66]
        if digest != CHALLENGE_DIGEST:
            raise TokenError("the token answers another challenge")
        return cls(
            nonce=raw[2:34], key_id=raw[66:98], authenticator=raw[98:], challenge_digest=digest
        )

    def spent_id(self) -> str:
        """What makes a token spent, hex: its key and its nonce."""
        return hashlib.sha256(self.key_id + self.nonce).hexdigest()

    def verify(self, public: rsa.RSAPublicKey, prefix: bytes) -> None:
        """TokenError unless the hub's key `public` signed it."""
        if self.key_id not in (key_id(public), plain_key_id(public)):
            raise TokenError("the token names another key")
        if len(prefix) != blindrsa.PREFIX_LEN:
            raise TokenError("the prefix is 32 bytes")
        try:
            blindrsa.verify(public, prefix + self.token_input(), self.authenticator, VARIANT)
        except blindrsa.BlindSignatureError:
            raise TokenError("the token's signature does not check") from None


def token_input(nonce: bytes, kid: bytes, digest: bytes = CHALLENGE_DIGEST) -> bytes:
    return struct.pack(">H", TOKEN_TYPE) + nonce + digest + kid


@dataclass(frozen=True)
class Pending:
    """A token being issued, as the daemon keeps it until the hub answers:
    everything needed to finish it from the same blinded message, after a
    crash too."""

    nonce: bytes
    key_id: bytes
    blinded: blindrsa.Blinded

    @property
    def prefix(self) -> bytes:
        return self.blinded.prepared[: blindrsa.PREFIX_LEN]

    def request(self) -> bytes:
        """The TokenRequest: type, the key id's last byte, the blinded message."""
        return struct.pack(">HB", TOKEN_TYPE, self.key_id[-1]) + self.blinded.blinded_msg

    def finish(self, public: rsa.RSAPublicKey, blind_sig: bytes) -> Token:
        """Unblind the hub's answer and check it (TokenError if it does not)."""
        try:
            sig = blindrsa.finalize(public, self.blinded, blind_sig, VARIANT)
        except blindrsa.BlindSignatureError as e:
            raise TokenError(f"the hub's blind signature does not check: {e}") from None
        return Token(nonce=self.nonce, key_id=self.key_id, authenticator=sig)


def begin(public: rsa.RSAPublicKey) -> Pending:
    """A fresh token for the key `public`: a random nonce, blinded."""
    nonce = secrets.token_bytes(32)
    kid = key_id(public)
    prepared = blindrsa.prepare(token_input(nonce, kid), VARIANT)
    return Pending(nonce=nonce, key_id=kid, blinded=blindrsa.blind(public, prepared, VARIANT))


def parse_request(raw: bytes) -> tuple[int, bytes]:
    """A TokenRequest's truncated key id and blinded message."""
    if len(raw) != 3 + NK:
        raise TokenError(f"a token request is {3 + NK} bytes")
    kind, truncated = struct.unpack(">HB", raw[:3])
    if kind != TOKEN_TYPE:
        raise TokenError("a token request here is of type 2")
    return truncated, raw[3:]
