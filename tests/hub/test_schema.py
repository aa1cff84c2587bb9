"""The migrations build the schema hub/schema.py declares, on both engines.

The hub's tables are made by its migrations (hub/migrations); hub/schema.py
is what the code and its readers rely on. A migration that forgets an index,
or a declaration no migration makes, shows here as a difference.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hub.schema import metadata
from hub.service import Hub


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
