"""RSA blind signatures (RFC 9474, RSABSSA), over `cryptography`'s RSA numbers.

No maintained Python library implements RFC 9474 (PyPI has none; the
maintained ones are Go, Rust, Zig, C and TypeScript), so the few lines of
the protocol are here, written from the RFC:

- `prepare`: the message, with a 32-byte random prefix in the Randomized
  variants (section 4.1);
- `blind`: EMSA-PSS-ENCODE, then multiply by r^e mod n (section 4.2);
- `blind_sign`: the RSA private operation on the blinded message, with
  GMP's constant-time exponentiation (gmpy2), blinded again, and checked
  against a fault (section 4.3);
- `finalize`: multiply by r^-1 mod n, then verify (section 4.4).

Every signature this module returns is checked with `cryptography`'s own
RSASSA-PSS verification (`verify`), an implementation independent of the
arithmetic here; and `tests/mecene/test_blindrsa.py` checks all four
variants against RFC 9474's test vectors (Appendix A).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from math import gcd

import gmpy2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HASH_LEN = 48  # SHA-384
PREFIX_LEN = 32


class BlindSignatureError(ValueError):
    """A blinded message, a blind signature or a signature that does not check."""


@dataclass(frozen=True)
class Variant:
    name: str
    salt_len: int
    randomized: bool


PSS_RANDOMIZED = Variant("RSABSSA-SHA384-PSS-Randomized", HASH_LEN, True)
PSSZERO_RANDOMIZED = Variant("RSABSSA-SHA384-PSSZERO-Randomized", 0, True)
PSS_DETERMINISTIC = Variant("RSABSSA-SHA384-PSS-Deterministic", HASH_LEN, False)
PSSZERO_DETERMINISTIC = Variant("RSABSSA-SHA384-PSSZERO-Deterministic", 0, False)
VARIANTS = {
    v.name: v
    for v in (PSS_RANDOMIZED, PSSZERO_RANDOMIZED, PSS_DETERMINISTIC, PSSZERO_DETERMINISTIC)
}


@dataclass(frozen=True)
class Blinded:
    """What the client keeps while the server signs: the prepared message
    (the prefix and the message) and the inverse of its blind."""

    blinded_msg: bytes
    inv: bytes
    prepared: bytes


def _octets(n: rsa.RSAPublicNumbers) -> int:
    return (n.n.bit_length() + 7) // 8


def _i2osp(x: int, length: int) -> bytes:
    return x.to_bytes(length, "big")


def _os2ip(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def emsa_pss_encode(msg: bytes, em_bits: int, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE of RFC 8017 section 9.1.1, SHA-384 and MGF1-SHA-384."""
    em_len = (em_bits + 7) // 8
    if em_len < HASH_LEN + len(salt) + 2:
        raise BlindSignatureError("encoding error: the key is too short")
    m_hash = hashlib.sha384(msg).digest()
    h = hashlib.sha384(bytes(8) + m_hash + salt).digest()
    db = bytes(em_len - len(salt) - HASH_LEN - 2) + b"\x01" + salt
    masked = bytes(a ^ b for a, b in zip(db, _mgf1(h, len(db)), strict=True))
    first = masked[0] & (0xFF >> (8 * em_len - em_bits))
    return bytes([first]) + masked[1:] + h + b"\xbc"


def prepare(msg: bytes, variant: Variant, prefix: bytes | None = None) -> bytes:
    """The message to blind and to verify: a random 32-byte prefix and the
    message in the Randomized variants, the message alone otherwise."""
    if not variant.randomized:
        return msg
    if prefix is None:
        prefix = secrets.token_bytes(PREFIX_LEN)
    if len(prefix) != PREFIX_LEN:
        raise BlindSignatureError("the message prefix is 32 bytes")
    return prefix + msg


def blind(
    public: rsa.RSAPublicKey,
    prepared: bytes,
    variant: Variant,
    *,
    salt: bytes | None = None,
    r: int | None = None,
) -> Blinded:
    """Blind `prepared` for `public`. `salt` and `r` are drawn at random
    unless given (only test vectors give them)."""
    numbers = public.public_numbers()
    n, e = numbers.n, numbers.e
    if salt is None:
        salt = secrets.token_bytes(variant.salt_len)
    if len(salt) != variant.salt_len:
        raise BlindSignatureError("wrong salt length")
    m = _os2ip(emsa_pss_encode(prepared, n.bit_length() - 1, salt))
    if gcd(m, n) != 1:
        raise BlindSignatureError("invalid input")
    while True:
        blind_r = r if r is not None else 1 + secrets.randbelow(n - 1)
        if gcd(blind_r, n) == 1:
            break
        if r is not None:
            raise BlindSignatureError("invalid blind")
    inv = pow(blind_r, -1, n)
    z = (m * pow(blind_r, e, n)) % n
    k = _octets(numbers)
    return Blinded(blinded_msg=_i2osp(z, k), inv=_i2osp(inv, k), prepared=prepared)


def blind_sign(private: rsa.RSAPrivateKey, blinded_msg: bytes) -> bytes:
    """The server's step: the RSA private operation on a blinded message.

    The private exponentiations are GMP's constant-time ones
    (`gmpy2.powmod_sec`, RFC 9474 section 7.1 asks for side-channel
    resistance), over the CRT values, and the operation is blinded once more
    with a fresh random factor besides; its result is checked with the
    public exponent before it is sent, so that a fault never leaks the key."""
    numbers = private.private_numbers()
    pub = numbers.public_numbers
    n, e = pub.n, pub.e
    k = _octets(pub)
    if len(blinded_msg) != k:
        raise BlindSignatureError("unexpected input size")
    m = _os2ip(blinded_msg)
    if m >= n:
        raise BlindSignatureError("the blinded message is not below the modulus")
    while True:
        u = 1 + secrets.randbelow(n - 1)
        if gcd(u, n) == 1:
            break
    p, q = gmpy2.mpz(numbers.p), gmpy2.mpz(numbers.q)
    c = (gmpy2.mpz(m) * gmpy2.powmod(u, e, n)) % n
    s1 = gmpy2.powmod_sec(c % p, numbers.dmp1, p)
    s2 = gmpy2.powmod_sec(c % q, numbers.dmq1, q)
    h = (numbers.iqmp * (s1 - s2)) % p
    s = int(((s2 + h * q) * gmpy2.invert(u, n)) % n)
    if pow(s, e, n) != m:
        raise BlindSignatureError("signing failure")
    return _i2osp(s, k)


def finalize(
    public: rsa.RSAPublicKey, blinded: Blinded, blind_sig: bytes, variant: Variant
) -> bytes:
    """Unblind the server's answer and check the signature; the signature."""
    numbers = public.public_numbers()
    k = _octets(numbers)
    if len(blind_sig) != k or len(blinded.inv) != k:
        raise BlindSignatureError("unexpected input size")
    sig = _i2osp((_os2ip(blind_sig) * _os2ip(blinded.inv)) % numbers.n, k)
    verify(public, blinded.prepared, sig, variant)
    return sig


def verify(public: rsa.RSAPublicKey, prepared: bytes, sig: bytes, variant: Variant) -> None:
    """The standard RSASSA-PSS verification (`cryptography`'s), SHA-384."""
    try:
        public.verify(
            sig,
            prepared,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=variant.salt_len),
            hashes.SHA384(),
        )
    except InvalidSignature:
        raise BlindSignatureError("invalid signature") from None
