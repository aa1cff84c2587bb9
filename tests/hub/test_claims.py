"""A creator key's life at the hub, its pure part as a table (hub/claims.py)."""

from __future__ import annotations

import re

import pytest

from hub.claims import escrow_returned_up_to, flattr_meta, may_own, new_flattr_id
from hub.errors import HubError


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
