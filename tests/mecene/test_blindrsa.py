"""RSA blind signatures (mecene/blindrsa.py) against RFC 9474's own test
vectors (Appendix A, all four variants), and the protocol's round trip with
the signature checked by `cryptography`'s standard RSASSA-PSS verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mecene import blindrsa

VECTORS = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "rfc9474_vectors.json").read_text()
)


def _key() -> rsa.RSAPrivateKey:
    n, e, d = (int(VECTORS[k], 16) for k in ("n", "e", "d"))
    p, q = int(VECTORS["p"], 16), int(VECTORS["q"], 16)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, n),
    )
    return numbers.private_key()


KEY = _key()


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: f"{v['section']} {v['name']}")
def test_rfc_9474_test_vectors(vector: dict[str, str]) -> None:
    variant = blindrsa.VARIANTS[vector["name"]]
    n = int(VECTORS["n"], 16)
    # The RFC lists the inverse of the blind; the blind is its inverse.
    r = pow(int(VECTORS["inv"], 16), -1, n)
    prepared = blindrsa.prepare(
        bytes.fromhex(VECTORS["msg"]), variant, prefix=bytes.fromhex(vector["msg_prefix"]) or None
    )
    blinded = blindrsa.blind(
        KEY.public_key(), prepared, variant, salt=bytes.fromhex(vector["salt"]), r=r
    )
    assert blinded.blinded_msg.hex() == vector["blinded_msg"]
    assert blinded.inv.hex() == VECTORS["inv"]
    blind_sig = blindrsa.blind_sign(KEY, blinded.blinded_msg)
    assert blind_sig.hex() == vector["blind_sig"]
    sig = blindrsa.finalize(KEY.public_key(), blinded, blind_sig, variant)
    assert sig.hex() == vector["sig"]
    blindrsa.verify(KEY.public_key(), prepared, sig, variant)


def test_a_randomized_message_carries_its_prefix_and_a_deterministic_one_does_not() -> None:
    msg = b"token input"
    randomized = blindrsa.prepare(msg, blindrsa.PSS_RANDOMIZED)
    assert len(randomized) == 32 + len(msg) and randomized.endswith(msg)
    assert blindrsa.prepare(msg, blindrsa.PSS_RANDOMIZED) != randomized  # a fresh prefix each time
    assert blindrsa.prepare(msg, blindrsa.PSS_DETERMINISTIC) == msg
    with pytest.raises(blindrsa.BlindSignatureError, match="32 bytes"):
        blindrsa.prepare(msg, blindrsa.PSS_RANDOMIZED, prefix=b"short")


@pytest.fixture(scope="module")
def key_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_round_trip_with_fresh_blinds(key_2048: rsa.RSAPrivateKey) -> None:
    public = key_2048.public_key()
    variant = blindrsa.PSS_RANDOMIZED
    sigs = set()
    for _ in range(3):
        prepared = blindrsa.prepare(b"the same message", variant)
        blinded = blindrsa.blind(public, prepared, variant)
        assert len(blinded.blinded_msg) == 256
        sig = blindrsa.finalize(
            public, blinded, blindrsa.blind_sign(key_2048, blinded.blinded_msg), variant
        )
        blindrsa.verify(public, prepared, sig, variant)
        sigs.add(sig)
    assert len(sigs) == 3  # the same message, three unlinkable signatures


def test_what_does_not_check_is_refused(key_2048: rsa.RSAPrivateKey) -> None:
    public = key_2048.public_key()
    variant = blindrsa.PSS_RANDOMIZED
    prepared = blindrsa.prepare(b"message", variant)
    blinded = blindrsa.blind(public, prepared, variant)
    blind_sig = blindrsa.blind_sign(key_2048, blinded.blinded_msg)
    sig = blindrsa.finalize(public, blinded, blind_sig, variant)
    # Another message, another key, a flipped bit, a wrong length: refused.
    with pytest.raises(blindrsa.BlindSignatureError, match="invalid signature"):
        blindrsa.verify(public, prepared[:-1] + b"X", sig, variant)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(blindrsa.BlindSignatureError, match="invalid signature"):
        blindrsa.verify(other.public_key(), prepared, sig, variant)
    with pytest.raises(blindrsa.BlindSignatureError, match="invalid signature"):
        blindrsa.finalize(public, blinded, bytes([blind_sig[0] ^ 1]) + blind_sig[1:], variant)
    with pytest.raises(blindrsa.BlindSignatureError, match="unexpected input size"):
        blindrsa.blind_sign(key_2048, blinded.blinded_msg[:-1])
    with pytest.raises(blindrsa.BlindSignatureError, match="below the modulus"):
        blindrsa.blind_sign(key_2048, b"\xff" * 256)
    with pytest.raises(blindrsa.BlindSignatureError, match="unexpected input size"):
        blindrsa.finalize(public, blinded, blind_sig + b"\x00", variant)
