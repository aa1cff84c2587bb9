"""The token path's wire messages as pairs: what one side builds, the other
parses back to the same value, and what is malformed is refused with the
code the hub answers with (mecene/tokenwire.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from mecene import tokens, tokenwire
from mecene.encoding import b64u

MONTH = "2026-11"


# Another key than the directory's: the one a spoilt directory or request names.
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
OTHER_KEY = {
    "id": tokenwire.key_hex(tokens.key_id(OTHER)),
    "denomination_cents": tokens.DENOMINATION,
    "public_key": b64u(tokens.spki(OTHER)),
}


@pytest.fixture(scope="module")
def directory() -> tokenwire.KeyDirectory:
    """A month's directory: one key, of the one denomination."""
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    key = tokenwire.DirectoryKey(tokens.key_id(public), tokens.DENOMINATION, public)
    return tokenwire.KeyDirectory(MONTH, "2027-12-01T00:00:00Z", (key,))


def _same_directory(a: tokenwire.KeyDirectory, b: tokenwire.KeyDirectory) -> None:
    assert (a.month, a.redeemable_until) == (b.month, b.redeemable_until)
    assert [(k.id, k.denomination_cents, tokens.spki(k.public)) for k in a.keys] == [
        (k.id, k.denomination_cents, tokens.spki(k.public)) for k in b.keys
    ]


HUB_KEY = Ed25519PrivateKey.generate()
HUB = b64u(HUB_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def signed(body: dict[str, Any], key: Ed25519PrivateKey = HUB_KEY) -> dict[str, Any]:
    return tokenwire.sign_directory({k: v for k, v in body.items() if k != "signature"}, key.sign)


def test_a_key_directory_parses_back_to_itself(directory: tokenwire.KeyDirectory) -> None:
    body = signed(tokenwire.build_directory(directory, HUB))
    parsed = tokenwire.parse_directory(MONTH, body, HUB)
    _same_directory(parsed, directory)
    assert parsed.sha256 == tokenwire.directory_sha256(body) != ""
    # The signature is not part of what is pinned.
    assert parsed.sha256 == tokenwire.directory_sha256({**body, "signature": "x"})


def test_a_directory_not_signed_by_the_pinned_hub_is_refused(
    directory: tokenwire.KeyDirectory,
) -> None:
    """Key consistency: a directory is the hub's signed word, checked under
    the hub key the daemon pinned; nobody else's, nor unsigned."""
    other = Ed25519PrivateKey.generate()
    body = tokenwire.build_directory(directory, HUB)
    with pytest.raises(tokenwire.WireError, match="not signed by this hub"):
        tokenwire.parse_directory(MONTH, body, HUB)
    with pytest.raises(tokenwire.WireError, match="does not check"):
        tokenwire.parse_directory(MONTH, signed(body, other), HUB)
    stranger = b64u(other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    with pytest.raises(tokenwire.WireError, match="not signed by this hub"):
        tokenwire.parse_directory(MONTH, signed(body, other), stranger)
    with pytest.raises(tokenwire.WireError, match="does not check"):
        tokenwire.parse_directory(MONTH, {**signed(body), "redeemable_until": "2099"}, HUB)


def test_an_issuance_receipt_is_the_hubs_and_names_the_directory() -> None:
    receipt = tokenwire.IssueReceipt(HUB, "A" * 43, "month:2026-11", MONTH, "ab" * 32, 7, "cd" * 32)
    text, signature = receipt.sign(HUB_KEY.sign)
    assert tokenwire.IssueReceipt.check(HUB, text, signature) == receipt
    other = Ed25519PrivateKey.generate()
    with pytest.raises(tokenwire.WireError, match="not signed"):
        tokenwire.IssueReceipt.check(HUB, text, receipt.sign(other.sign)[1])
    with pytest.raises(tokenwire.WireError, match="no signed receipt"):
        tokenwire.IssueReceipt.check(HUB, None, signature)
    bad = '{"v":1}'
    with pytest.raises(tokenwire.WireError, match="malformed"):
        tokenwire.IssueReceipt.check(HUB, bad, b64u(HUB_KEY.sign(bad.encode())))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda d: {**d, "month": "2026-10"}, "for another month"),
        (lambda d: {**d, "variant": "RSABSSA-SHA384-PSS-Deterministic"}, "of another kind"),
        (lambda d: {**d, "keys": []}, "one key of the one denomination"),
        # A key per person would tell whose a token was: one key, one value.
        (lambda d: {**d, "keys": [*d["keys"], OTHER_KEY]}, "one key of the one denomination"),
        (
            lambda d: {**d, "keys": [{**d["keys"][0], "denomination_cents": 20}]},
            "one key of the one denomination",
        ),
        (lambda d: {**d, "keys": {"a": 1}}, "malformed"),
        (lambda d: {**d, "keys": [{**d["keys"][0], "id": OTHER_KEY["id"]}]}, "not its key's"),
        (lambda d: {**d, "keys": [{**d["keys"][0], "id": "XY"}]}, "malformed"),
    ],
)
def test_a_key_directory_that_does_not_check_is_refused(
    directory: tokenwire.KeyDirectory, spoil: Any, message: str
) -> None:
    with pytest.raises(tokenwire.WireError, match=message):
        tokenwire.parse_directory(
            MONTH, signed(spoil(tokenwire.build_directory(directory, HUB))), HUB
        )


@settings(max_examples=25, deadline=None)
@given(
    picks=st.lists(st.just(0), min_size=1, max_size=6),
    gift=st.one_of(st.none(), st.integers(100, 100_000)),
)
def test_an_issue_request_parses_back_to_what_was_blinded(
    directory: tokenwire.KeyDirectory, picks: list[int], gift: int | None
) -> None:
    pending = [tokens.begin(directory.keys[i].public) for i in picks]
    transfer = None if gift is None else (str(uuid.uuid4()), gift)
    req = tokenwire.parse_issue(tokenwire.build_issue(MONTH, pending, transfer))
    assert req.month == MONTH and req.transfer == transfer
    assert req.requests == tuple((p.key_id, p.blinded.blinded_msg) for p in pending)
    assert req.ref == (f"month:{MONTH}" if transfer is None else f"transfer:{transfer[0]}")
    # The same request again is the same request; another is not.
    again = tokenwire.parse_issue(tokenwire.build_issue(MONTH, pending, transfer))
    assert again.sha256 == req.sha256
    fresh = [tokens.begin(directory.keys[picks[0]].public), *pending[1:]]
    other = tokenwire.parse_issue(tokenwire.build_issue(MONTH, fresh, transfer))
    assert other.sha256 != req.sha256


def test_malformed_issue_requests_are_refused(directory: tokenwire.KeyDirectory) -> None:
    pending = tokens.begin(directory.keys[0].public)
    good = tokenwire.build_issue(MONTH, [pending])
    row = good["tokens"][0]
    cases = [
        ({**good, "extra": 1}, "send {month"),
        ({**good, "month": "November"}, "month is YYYY-MM"),
        ({**good, "tokens": []}, "a list of 1 to"),
        ({**good, "tokens": [{**row, "key": row["key"].upper()}]}, "64 hex digits"),
        ({**good, "tokens": [{**row, "request": 5}]}, "request is base64url"),
        ({**good, "tokens": [{**row, "request": b64u(b"short")}]}, "a token request is"),
        (
            {**good, "tokens": [{**row, "key": OTHER_KEY["id"]}]},
            "names another key",
        ),
        ({**good, "transfer": {"id": "x" * 8, "cents": 99}}, "a transfer is 1.00 €"),
        ({**good, "transfer": {"id": "x" * 8, "cents": 1.5}}, "whole number"),
        ({**good, "transfer": {"id": "no", "cents": 500}}, "8 to 64 characters"),
    ]
    for body, message in cases:
        with pytest.raises(tokenwire.WireError, match=message) as caught:
            tokenwire.parse_issue(body)
        assert caught.value.code == "invalid"


def test_an_issue_answer_parses_back_and_counts_its_signatures() -> None:
    answer = tokenwire.IssueAnswer(MONTH, (b"\x01" * 256, b"\x02" * 256))
    assert tokenwire.parse_issue_answer(tokenwire.build_issue_answer(answer), 2) == answer
    with pytest.raises(tokenwire.WireError, match="one signature per token"):
        tokenwire.parse_issue_answer(tokenwire.build_issue_answer(answer), 3)
    with pytest.raises(tokenwire.WireError, match="one signature per token"):
        tokenwire.parse_issue_answer(["not", "an", "answer"], 3)


def test_a_redemption_parses_back_and_a_bad_token_says_so(
    directory: tokenwire.KeyDirectory,
) -> None:
    token = tokens.Token(
        nonce=b"\x07" * 32, key_id=directory.keys[0].id, authenticator=b"\x09" * tokens.NK
    )
    r = tokenwire.Redemption(token, b"\x05" * 32, "domain:example.org")
    body = tokenwire.build_redemption(r)
    assert tokenwire.parse_redemption(body) == r
    for spoilt, code in [
        ({**body, "token": b64u(b"short")}, "bad_token"),
        ({**body, "prefix": b64u(b"\x05" * 31)}, "bad_token"),
        ({**body, "creator": "nope:x"}, "invalid"),
        ({**body, "who": "me"}, "invalid"),
    ]:
        with pytest.raises(tokenwire.WireError) as caught:
            tokenwire.parse_redemption(spoilt)
        assert caught.value.code == code
