"""counter_people: fixed-width hashed keys instead of three text columns

Issue 31, "acceptance writes little". A settlement writes up to forty
counter rows (one per creator and thing it paid, for its giver), each entered
into a primary key of (kind, 64-character hex hash, 43-character account),
text compared through the cluster's collation. Measured with
bench/hub_scale.py (10,000 accounts), leaving them out took PostgreSQL's CPU
per settlement from 2.34 ms to 1.62 ms: the largest part of its work at
acceptance. The rows stay (the counters count each person once over all
time), narrower: `subject` is the kind's letter and 15 bytes of the
subject's SHA-256, `person` 8 bytes of the account's SHA-256 (hub/counting.py,
which the keys below must match).

Existing rows are carried over: the old `subject_hash` is the subject's
SHA-256 in hex, so the new key is made from it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# As hub/counting.py makes them (copied: a migration must not change when the code does).
KINDS = {"creator": b"c", "thing": b"t"}
BATCH = 10_000


def _subject(kind: str, subject_hash: str) -> bytes:
    return KINDS[kind] + bytes.fromhex(subject_hash)[:15]


def _person(account: str) -> int:
    return int.from_bytes(hashlib.sha256(account.encode()).digest()[:8], "big", signed=True)


def upgrade() -> None:
    bind = op.get_bind()
    op.rename_table("counter_people", "counter_people_old")
    if bind.dialect.name == "postgresql":
        # An index's name is the schema's, and the new table's key takes it.
        op.execute("ALTER INDEX pk_counter_people RENAME TO pk_counter_people_old")
    new = op.create_table(
        "counter_people",
        sa.Column("subject", sa.LargeBinary(length=16), nullable=False),
        sa.Column("person", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "person", name="pk_counter_people"),
    )
    if bind.dialect.name == "postgresql":
        # In the database: a month of rows need not travel through Python.
        op.execute(
            """
            INSERT INTO counter_people (subject, person)
            SELECT CASE kind WHEN 'creator' THEN '\\x63'::bytea ELSE '\\x74'::bytea END
                       || substring(decode(subject_hash, 'hex') FROM 1 FOR 15),
                   ('x' || left(encode(sha256(convert_to(account, 'UTF8')), 'hex'), 16))
                       ::bit(64)::bigint
            FROM counter_people_old
            ON CONFLICT DO NOTHING
            """
        )
    else:
        result = bind.execute(sa.text("SELECT kind, subject_hash, account FROM counter_people_old"))
        while rows := result.fetchmany(BATCH):
            bind.execute(
                sqlite.insert(new).on_conflict_do_nothing(),
                [{"subject": _subject(k, h), "person": _person(a)} for k, h, a in rows],
            )
    op.drop_table("counter_people_old")


def downgrade() -> None:
    # The accounts cannot be recovered from their hashes: the counters start
    # again empty.
    op.drop_table("counter_people")
    op.create_table(
        "counter_people",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject_hash", "account", name="pk_counter_people"),
    )
