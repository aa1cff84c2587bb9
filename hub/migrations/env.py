"""Alembic environment: run by hub.db.migrate() on a connection it passes in."""

from __future__ import annotations

from alembic import context

from hub.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the hub always passes one
    raise RuntimeError("run migrations through `mecene-hub migrate` (hub.db.migrate)")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
