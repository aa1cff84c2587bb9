"""The counters' keys are made by one rule in Python and in SQL, on both
engines (hub/counting.py): a gift counts its giver from Python, the payout
run counts a settlement's givers inside the database, and a reader looks
both up with the Python key."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import literal, select

from hub.counting import KINDS, PersonKey, SubjectKey, person_key, subject_key
from hub.service import Hub
from tests.support.hubs import rows_tying

SUBJECTS = [
    "domain:example.org",
    "https://blog.example/posts/ünïcode?q=1",
    "https://例え.jp/記事",
    "flattr:zed",
    "",
]
ACCOUNTS = ["A" * 43, "giver-00000001", "ÿ", "x" * 64]


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_the_keys_in_sql_are_the_keys_in_python(hub: Hub, kind: str) -> None:
    async with hub.engine.connect() as conn:
        for subject in SUBJECTS:
            got = await conn.scalar(select(SubjectKey(literal(KINDS[kind]), literal(subject))))
            assert bytes(got) == subject_key(kind, subject)
            assert len(got) == 16
        people = [await conn.scalar(select(PersonKey(literal(a)))) for a in ACCOUNTS]
    assert people == [person_key(a) for a in ACCOUNTS]
    # Both halves of the 64-bit range occur: the sign is carried, not lost.
    assert min(people) < 0 < max(people)


async def test_a_counted_giver_is_tied_to_what_it_paid_in_the_privacy_scan(
    connect: Any, hub: Hub
) -> None:
    """The scan the unlinkable tests rely on (`rows_tying`) sees through the
    counters' hashes: a plain settlement's giver, counted for a creator and
    a thing, is found tied to them by the counter rows themselves."""
    alice = connect()
    await alice.deposit(2000)
    key, thing = "flattr:zed", "https://example.org/post"
    await alice.settle("2026-10", [{"creator": key, "url": thing, "cents": 200}])
    assert await hub.count("creator", key) == 1
    tied = await rows_tying(hub.engine, alice.person.account, [key])
    assert {table for table, _row in tied} >= {"allocations", "counter_people"}
    assert await rows_tying(hub.engine, alice.person.account, ["flattr:nobody"]) == []
