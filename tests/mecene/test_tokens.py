"""A month's spend as tokens of one value (issue 27): whole tokens only, and
each creator's share by randomised rounding whose expectation is exact."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from mecene import blindrsa, money, tokens

SHARES = st.lists(
    st.tuples(st.sampled_from([f"domain:c{i}.example" for i in range(30)]), st.integers(0, 50_000)),
    min_size=1,
    max_size=30,
    unique_by=lambda s: s[0],
)


def test_one_value_whose_fee_is_a_whole_cent() -> None:
    """No token escapes the fee: 10 % of a token is exactly a cent."""
    assert money.creator_fee_cents(tokens.DENOMINATION, nonprofit=False) * 10 == (
        tokens.DENOMINATION
    )
    assert tokens.whole(735) == 73 and tokens.whole(9) == 0
    assert tokens.whole(10**9) == tokens.MAX_TOKENS  # the rest stays on the balance
    with pytest.raises(ValueError):
        tokens.whole(-1)


@settings(max_examples=200, deadline=None)
@given(shares=SHARES, draw=st.integers(0, 2**32 - 1))
def test_the_tokens_add_up_and_each_share_is_rounded_down_or_up(
    shares: list[tuple[str, int]], draw: int
) -> None:
    total = sum(c for _k, c in shares)
    count = tokens.whole(total)
    got = tokens.apportion(shares, count, lambda _n: draw)
    assert sum(got.values()) == count
    for creator, cents in shares:
        part = Fraction(cents * count, total) if total else Fraction(0)
        assert int(part) <= got.get(creator, 0) <= int(part) + 1


@settings(max_examples=30, deadline=None)
@given(shares=SHARES)
def test_each_creator_gets_its_exact_share_on_average(shares: list[tuple[str, int]]) -> None:
    """Over draws spread evenly across the range, the mean number of tokens
    of each creator is its exact part, to the spread's grain."""
    total = sum(c for _k, c in shares)
    count = tokens.whole(total)
    draws = 1000
    sums: dict[str, int] = {}
    for i in range(draws):
        got = tokens.apportion(shares, count, lambda n, i=i: i * n // draws)
        for creator, n in got.items():
            sums[creator] = sums.get(creator, 0) + n
    for creator, cents in shares:
        part = Fraction(cents * count, total) if total else Fraction(0)
        mean = Fraction(sums.get(creator, 0), draws)
        assert abs(mean - part) <= Fraction(1, draws)


def test_apportion_refuses_what_makes_no_sense() -> None:
    with pytest.raises(ValueError):
        tokens.apportion([("domain:a.example", -1)], 1, lambda n: 0)
    with pytest.raises(ValueError):
        tokens.apportion([("domain:a.example", 0)], 1, lambda n: 0)
    assert tokens.apportion([("domain:a.example", 0)], 0, lambda n: 0) == {}


RFC_9578 = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "rfc9578_vectors.json").read_text()
)


def test_token_key_id_is_rfc_9578s() -> None:
    """RFC 9578 Appendix A.2: the issuer's key written as SerializeToPKIXWithPSS
    is the RFC's `pkS` byte for byte, its SHA-256 is the `token_key_id` inside
    the RFC's token, and that token checks under the key (the RFC's variant,
    PSS-Deterministic; ours differs only by its prefix)."""
    private = serialization.load_pem_private_key(bytes.fromhex(RFC_9578["skS"]), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    public = private.public_key()
    assert tokens.pss_spki(public).hex() == RFC_9578["pkS"]
    raw = bytes.fromhex(RFC_9578["token"])
    assert tokens.key_id(public) == raw[66:98]
    assert tokens.key_id(public) != tokens.plain_key_id(public)
    # The published form reads back as the same key.
    assert tokens.load_public(tokens.pss_spki(public)).public_numbers() == public.public_numbers()
    blindrsa.verify(public, raw[:98], raw[98:], blindrsa.PSS_DETERMINISTIC)
    with pytest.raises(blindrsa.BlindSignatureError):
        blindrsa.verify(public, raw[:97] + b"\x00", raw[98:], blindrsa.PSS_DETERMINISTIC)


def test_a_token_signed_under_the_plain_key_id_still_checks() -> None:
    """Tokens signed before the RFC's ids carry the old one in their signed
    input; they redeem until their month expires (hub migration 0011)."""
    private = rsa.generate_private_key(65537, tokens.KEY_BITS)
    public = private.public_key()
    nonce = b"\x01" * 32
    for kid in (tokens.key_id(public), tokens.plain_key_id(public)):
        prepared = blindrsa.prepare(tokens.token_input(nonce, kid), tokens.VARIANT)
        blinded = blindrsa.blind(public, prepared, tokens.VARIANT)
        sig = blindrsa.blind_sign(private, blinded.blinded_msg)
        p = tokens.Pending(nonce=nonce, key_id=kid, blinded=blinded)
        token = p.finish(public, sig)
        token.verify(public, p.prefix)
    stranger = tokens.Token(nonce=nonce, key_id=b"\x02" * 32, authenticator=token.authenticator)
    with pytest.raises(tokens.TokenError, match="another key"):
        stranger.verify(public, p.prefix)
