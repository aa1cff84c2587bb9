"""The migrations build the schema hub/schema.py declares, on both engines.

The hub's tables are made by its migrations (hub/migrations); hub/schema.py
is what the code and its readers rely on. A migration that forgets an index,
or a declaration no migration makes, shows here as a difference.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hub.db import migrate, open_database
from hub.routing import Piece
from hub.schema import metadata
from hub.service import Hub
from mecene.time import FrozenClock
from tests.support.hubs import ProofSite, running_hub


def expected(conn: Any, difference: Any) -> bool:
    """The differences that are meant: Alembic's own table, and on PostgreSQL
    the foreign keys of `postings`, which migration 0006 replaced by a check
    per statement (a row trigger per posting cost 30 µs per key)."""
    kind, item = difference[0], difference[1]
    if kind == "remove_table":
        return bool(item.name == "alembic_version")
    return kind == "add_fk" and conn.dialect.name == "postgresql" and item.table.name == "postings"


async def test_the_migrated_database_is_the_declared_schema(hub: Hub) -> None:
    def differences(conn: Any) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if not expected(conn, d)]

    async with hub.engine.connect() as conn:
        found = await conn.run_sync(differences)
        indexes = await conn.run_sync(
            lambda c: {i["name"] for i in inspect(c).get_indexes("allocations")}
        )
    assert found == []
    # What migration 0013 changed, named: its three indexes, not the ones they replaced.
    assert {"ix_allocations_escrow", "ix_allocations_routed", "ix_allocations_account_month"} <= (
        indexes
    )
    old = {"ix_allocations_creator_state", "ix_allocations_recipient_month", "ix_allocations_month"}
    assert not old & indexes


async def test_counters_counted_before_migration_0014_are_kept(
    db_url: str, clock: FrozenClock, proof_site: ProofSite
) -> None:
    """Migration 0014 made the counters' keys hashes of fixed width; the rows
    written before it (the subject's SHA-256 in hex, the account in full) are
    carried over on each engine: the counters read the same after it, and a
    person already counted is not counted twice."""
    engine = open_database(db_url)
    thing = "https://blog.example/post"
    people = ["A" * 43, "B" * 43, "C" * 43]
    try:
        await migrate(engine, "0013")
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO counter_people (kind, subject_hash, account) VALUES (:k, :h, :a)"
                ),
                [
                    {"k": kind, "h": hashlib.sha256(subject.encode()).hexdigest(), "a": a}
                    for kind, subject, who in (
                        ("creator", "domain:blog.example", people),
                        ("thing", thing, people[:2]),
                        ("creator", "domain:other.example", people[2:]),
                    )
                    for a in who
                ],
            )
    finally:
        await engine.dispose()
    async with running_hub(db_url, clock, proof_site) as h:
        assert await h.reports.count("creator", "domain:blog.example") == 3
        assert await h.reports.count("thing", thing) == 2
        assert await h.reports.count("creator", "domain:other.example") == 1
        assert await h.reports.count("thing", "domain:blog.example") == 0
        async with h.engine.begin() as conn:
            await h.admission.count(
                conn,
                people[0],
                [
                    Piece(
                        giver=people[0],
                        month="2026-10",
                        creator="domain:other.example",
                        cents=100,
                        url=thing,
                    )
                ],
            )
        assert await h.reports.count("creator", "domain:other.example") == 2
        assert await h.reports.count("thing", thing) == 2
