"""The counters' keys are made by one rule in Python and in SQL, on both
engines (hub/counting.py): a gift counts its giver from Python, the payout
run counts a settlement's givers inside the database, and a reader looks
both up with the Python key."""

from __future__ import annotations

import pytest
from sqlalchemy import literal, select

from hub.counting import KINDS, PersonKey, SubjectKey, person_key, subject_key
from hub.service import Hub

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
