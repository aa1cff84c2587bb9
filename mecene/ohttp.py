"""Oblivious HTTP (RFC 9458) and the Binary HTTP it carries (RFC 9292): what
lets a daemon redeem its tokens and fetch key directories through a relay
that sees its address but not the request, to a gateway (the hub) that
sees the request but not the address.

HPKE (RFC 9180) is pyhpke's: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
AES-128-GCM, the suite of RFC 9458's own example. What is written here is
the framing around it: key configurations (section 3), the encapsulation
of a request (4.3) and of its response (4.4), and the known-length Binary
HTTP messages (RFC 9292 section 3) of the requests the gateway accepts.
Tested against RFC 9458's Appendix A (tests/mecene/test_ohttp.py).

No I/O: the daemon posts what `encapsulate_request` makes, the hub's route
answers with what `Gateway.decapsulate` and `encapsulate_response` make.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKeyPair, PyHPKEError

REQUEST_TYPE = "message/ohttp-req"
RESPONSE_TYPE = "message/ohttp-res"
KEYS_TYPE = "application/ohttp-keys"
REQUEST_LABEL = b"message/bhttp request"
RESPONSE_LABEL = b"message/bhttp response"

KEM = KEMId.DHKEM_X25519_HKDF_SHA256
KDF = KDFId.HKDF_SHA256
AEAD = AEADId.AES128_GCM
NK, NN, NENC = 16, 12, 32  # AES-128-GCM's key and nonce, X25519's encapsulated key
SUITE = CipherSuite.new(KEM, KDF, AEAD)
# The largest message either side accepts: a redemption or a directory is
# well under a kilobyte.
MAX_MESSAGE = 64 * 1024


class OhttpError(ValueError):
    """A message that cannot be decapsulated or decoded: answered with a
    plain 400 by the gateway, never with anything of the content."""


# -- key configurations (RFC 9458 section 3) -------------------------------------


@dataclass(frozen=True)
class KeyConfig:
    key_id: int
    public_key: bytes  # X25519, 32 bytes
    suites: tuple[tuple[int, int], ...] = ((KDF.value, AEAD.value),)

    def encode(self) -> bytes:
        algorithms = b"".join(struct.pack("!HH", k, a) for k, a in self.suites)
        return (
            struct.pack("!BH", self.key_id, KEM.value)
            + self.public_key
            + struct.pack("!H", len(algorithms))
            + algorithms
        )

    @classmethod
    def decode(cls, data: bytes) -> KeyConfig:
        """One key configuration; OhttpError if malformed or not of our KEM
        and suite (the only one this side speaks)."""
        if len(data) < 3 + NENC + 2:
            raise OhttpError("a key configuration too short")
        key_id, kem = struct.unpack_from("!BH", data)
        if kem != KEM.value:
            raise OhttpError(f"a key configuration of KEM {kem:#06x}, not X25519")
        public = data[3 : 3 + NENC]
        (length,) = struct.unpack_from("!H", data, 3 + NENC)
        rest = data[3 + NENC + 2 :]
        if length != len(rest) or length == 0 or length % 4:
            raise OhttpError("a key configuration's algorithms do not add up")
        suites = tuple(struct.unpack_from("!HH", rest, i) for i in range(0, length, 4))
        if (KDF.value, AEAD.value) not in suites:
            raise OhttpError("a key configuration without HKDF-SHA256 and AES-128-GCM")
        return cls(key_id, public, suites)


def _header(key_id: int) -> bytes:
    return struct.pack("!BHHH", key_id, KEM.value, KDF.value, AEAD.value)


# -- the client's side -----------------------------------------------------------


@dataclass(frozen=True)
class ResponseContext:
    """What opens the response to one request (its HPKE export and `enc`)."""

    secret: bytes = field(repr=False)
    enc: bytes


def encapsulate_request(
    config: KeyConfig, request: bytes, *, ephemeral: bytes | None = None
) -> tuple[bytes, ResponseContext]:
    """An Encapsulated Request for the gateway that published `config`, and
    the context for its response. `ephemeral`: the sender's X25519 private
    key, for the RFC's test vector only (else a fresh one, as section 6.1
    requires)."""
    header = _header(config.key_id)
    info = REQUEST_LABEL + b"\x00" + header
    pkr = SUITE.kem.deserialize_public_key(config.public_key)
    eks = None
    if ephemeral is not None:
        sk = SUITE.kem.deserialize_private_key(ephemeral)
        eks = KEMKeyPair(sk, SUITE.kem.deserialize_public_key(_x25519_public(ephemeral)))
    enc, context = SUITE.create_sender_context(pkr, info, eks=eks)
    sealed = context.seal(request)
    secret = context.export(RESPONSE_LABEL, max(NN, NK))
    return header + enc + sealed, ResponseContext(secret, enc)


def decapsulate_response(context: ResponseContext, response: bytes) -> bytes:
    nonce_len = max(NN, NK)
    if len(response) < nonce_len + 16:
        raise OhttpError("an encapsulated response too short")
    nonce, sealed = response[:nonce_len], response[nonce_len:]
    key, aead_nonce = _response_keys(context.secret, context.enc, nonce)
    try:
        return AESGCM(key).decrypt(aead_nonce, sealed, b"")
    except Exception:
        raise OhttpError("an encapsulated response that does not open") from None


def _response_keys(secret: bytes, enc: bytes, nonce: bytes) -> tuple[bytes, bytes]:
    """RFC 9458 section 4.4: the AEAD key and nonce of a response."""
    prk = hmac.new(enc + nonce, secret, sha256).digest()  # HKDF-Extract(salt, secret)

    def expand(label: bytes, length: int) -> bytes:
        return HKDFExpand(hashes.SHA256(), length, label).derive(prk)

    return expand(b"key", NK), expand(b"nonce", NN)


def _x25519_public(private: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# -- the gateway's side ----------------------------------------------------------


class Gateway:
    """One X25519 key, its configuration, and the opening of requests."""

    def __init__(self, key_id: int, private: bytes) -> None:
        self.key_id = key_id
        self._sk = SUITE.kem.deserialize_private_key(private)
        self.config = KeyConfig(key_id, _x25519_public(private))

    @classmethod
    def derived(cls, seed: bytes, key_id: int = 1) -> Gateway:
        """The gateway key derived from a secret every hub process shares
        (RFC 9180's DeriveKeyPair): the same in each, with nothing to store."""
        pair = SUITE.kem.derive_key_pair(seed)
        return cls(key_id, pair.private_key.to_private_bytes())

    def decapsulate(
        self, message: bytes, *, response_nonce: bytes | None = None
    ) -> tuple[bytes, ResponseSealer]:
        """The request inside an Encapsulated Request, and what seals its
        response; OhttpError if it is not for this key or does not open."""
        if len(message) > MAX_MESSAGE:
            raise OhttpError("an encapsulated request too large")
        if len(message) < 7 + NENC + 16:
            raise OhttpError("an encapsulated request too short")
        header, enc, sealed = message[:7], message[7 : 7 + NENC], message[7 + NENC :]
        if header != _header(self.key_id):
            raise OhttpError("an encapsulated request for another key or suite")
        try:
            context = SUITE.create_recipient_context(
                enc, self._sk, REQUEST_LABEL + b"\x00" + header
            )
            request = context.open(sealed)
        except (PyHPKEError, ValueError):  # ValueError: a low-order X25519 point
            raise OhttpError("an encapsulated request that does not open") from None
        secret = context.export(RESPONSE_LABEL, max(NN, NK))
        return request, ResponseSealer(secret, enc, response_nonce)


@dataclass(frozen=True)
class ResponseSealer:
    secret: bytes = field(repr=False)
    enc: bytes
    nonce: bytes | None = None  # the RFC's test vector only; else fresh

    def seal(self, response: bytes) -> bytes:
        nonce = self.nonce if self.nonce is not None else secrets.token_bytes(max(NN, NK))
        key, aead_nonce = _response_keys(self.secret, self.enc, nonce)
        return nonce + AESGCM(key).encrypt(aead_nonce, response, b"")


# -- Binary HTTP, known length (RFC 9292 section 3) --------------------------------


def _varint(n: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 section 16)."""
    if n < 1 << 6:
        return struct.pack("!B", n)
    if n < 1 << 14:
        return struct.pack("!H", n | 0x4000)
    if n < 1 << 30:
        return struct.pack("!I", n | 0x80000000)
    return struct.pack("!Q", n | 0xC000000000000000)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def done(self) -> bool:
        return self.at >= len(self.data)

    def varint(self) -> int:
        if self.done():
            raise OhttpError("a binary HTTP message cut short")
        first = self.data[self.at]
        size = 1 << (first >> 6)
        if self.at + size > len(self.data):
            raise OhttpError("a binary HTTP message cut short")
        value = int.from_bytes(self.data[self.at : self.at + size], "big") & (
            (1 << (8 * size - 2)) - 1
        )
        self.at += size
        return value

    def chunk(self) -> bytes:
        n = self.varint()
        if self.at + n > len(self.data):
            raise OhttpError("a binary HTTP message cut short")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def fields(self) -> list[tuple[bytes, bytes]]:
        """A known-length field section; absent at the end (truncated)."""
        if self.done():
            return []
        section = _Reader(self.chunk())
        out = []
        while not section.done():
            out.append((section.chunk(), section.chunk()))
        return out

    def text_fields(self, what: str) -> tuple[tuple[str, str], ...]:
        """`fields`, as names (ASCII) and values (Latin-1)."""
        try:
            return tuple((n.decode("ascii"), v.decode("latin-1")) for n, v in self.fields())
        except UnicodeDecodeError:
            raise OhttpError(f"a binary HTTP {what}'s field name is not ASCII") from None

    def content(self) -> bytes:
        return b"" if self.done() else self.chunk()


def _fields(headers: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(len(n)) + n + _varint(len(v)) + v for n, v in headers)
    return _varint(len(body)) + body


@dataclass(frozen=True)
class Request:
    method: str
    scheme: str
    authority: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes = b""

    def encode(self) -> bytes:
        control = b"".join(
            _varint(len(p)) + p
            for p in (x.encode() for x in (self.method, self.scheme, self.authority, self.path))
        )
        headers = [(n.lower().encode(), v.encode()) for n, v in self.headers]
        return (
            _varint(0)
            + control
            + _fields(headers)
            + _varint(len(self.content))
            + self.content
            + _fields([])
        )

    @classmethod
    def decode(cls, data: bytes) -> Request:
        r = _Reader(data)
        if r.varint() != 0:
            raise OhttpError("not a known-length binary HTTP request")
        try:
            method, scheme, authority, path = (r.chunk().decode("ascii") for _ in range(4))
        except UnicodeDecodeError:
            raise OhttpError("a binary HTTP request's control data is not ASCII") from None
        headers = r.text_fields("request")
        content = r.content()
        r.fields()  # trailers, ignored
        for x in r.data[r.at :]:
            if x:
                raise OhttpError("a binary HTTP request with bytes after it")  # padding is zeros
        return cls(method, scheme, authority, path, headers, content)


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes = b""

    def encode(self) -> bytes:
        headers = [(n.lower().encode(), v.encode()) for n, v in self.headers]
        return (
            _varint(1)
            + _varint(self.status)
            + _fields(headers)
            + _varint(len(self.content))
            + self.content
            + _fields([])
        )

    @classmethod
    def decode(cls, data: bytes) -> Response:
        r = _Reader(data)
        if r.varint() != 1:
            raise OhttpError("not a known-length binary HTTP response")
        status = r.varint()
        while 100 <= status < 200:  # informational responses: skipped
            r.fields()
            status = r.varint()
        if not 200 <= status < 600:
            raise OhttpError(f"a binary HTTP response with status {status}")
        return cls(status, r.text_fields("response"), r.content())
