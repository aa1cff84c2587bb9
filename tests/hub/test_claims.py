"""A creator key's life at the hub, its pure part as a table (hub/claims.py)."""

from __future__ import annotations

import re

import pytest

from hub.claims import escrow_returned_up_to, flattr_meta, may_own, new_flattr_id
from hub.errors import HubError
from hub.proofs import ProofError, ProofFetcher, one_sentence


@pytest.mark.parametrize(
    ("owner", "account", "allowed"),
    [(None, "alice", True), ("alice", "alice", True), ("bob", "alice", False)],
)
def test_a_key_is_owned_by_one_account_for_good(
    owner: str | None, account: str, allowed: bool
) -> None:
    if allowed:
        may_own(owner, account, "domain:example.org")
    else:
        with pytest.raises(HubError) as caught:
            may_own(owner, account, "domain:example.org")
        assert caught.value.code == "key_taken"


@pytest.mark.parametrize(
    ("now", "months", "returned"),
    [
        # Money for 2025-11 was settled at its end; with 12 months of escrow
        # it has waited the whole period once 2026-12 begins.
        ("2026-12", 12, "2025-11"),
        ("2027-01", 12, "2025-12"),
        ("2026-12", 1, "2026-10"),
        ("2026-01", 0, "2025-12"),
    ],
)
def test_escrow_goes_back_once_the_whole_period_has_passed(
    now: str, months: int, returned: str
) -> None:
    assert escrow_returned_up_to(now, months) == returned


def test_an_issued_flattr_id_and_its_tag() -> None:
    key = new_flattr_id()
    assert re.fullmatch(r"flattr:m[0-9a-f]{12}", key) and key != new_flattr_id()
    assert flattr_meta(key) == f'<meta name="flattr:id" content="{key[7:]}">'


async def test_a_proof_that_could_not_be_fetched_is_said_once() -> None:
    """`mecene creator verify` said "… could not be fetched (ClientConnectorDNSError);
    … could not be fetched (ClientConnectorDNSError)" in one line. A site whose
    name does not resolve (`.invalid` never does, RFC 2606) is said once,
    in words, with both addresses tried."""
    fetcher = ProofFetcher()
    try:
        with pytest.raises(ProofError) as caught:
            await fetcher.prove("domain:mecene-test.invalid", "mecene-claim-x")
    finally:
        await fetcher.close()
    assert str(caught.value) == (
        "https://mecene-test.invalid/.well-known/mecene-claim.txt and"
        " https://mecene-test.invalid/ could not be fetched (its name does not resolve)"
    )
    mixed = [
        ProofError("a could not be fetched (x)", "https://a/", "x"),
        ProofError("no token at https://b/"),
        ProofError("c could not be fetched (x)", "https://c/", "x"),
        ProofError("no token at https://b/"),
    ]
    assert one_sentence(mixed) == (
        "https://a/ and https://c/ could not be fetched (x); no token at https://b/"
    )
