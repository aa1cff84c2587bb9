"""every ledger entry sums to zero: checked once per statement, not per row

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Migration 0003's deferred row trigger summed an entry's postings once for
each of its postings: quadratic in the entry's size. A payout chunk's entry
has a posting per creator of the chunk (hundreds or thousands), and seeding
100,000 accounts in one entry kept PostgreSQL busy for minutes. Every entry's
postings are now inserted by one statement (hub/ledger.py, hub/bulk.py), so
a statement-level trigger over the statement's new rows (a transition
table) checks each entry it touched, once, when the statement ends. SQLite
has no such trigger: there the check is the ledger's own (and
`mecene-hub check`).
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER postings_balanced ON postings")
    op.execute("DROP FUNCTION postings_entry_balanced()")
    op.execute(
        """
        CREATE FUNCTION postings_entries_balanced() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
          bad bigint;
        BEGIN
          SELECT p.entry_id INTO bad FROM postings p
          WHERE p.entry_id IN (SELECT DISTINCT entry_id FROM new_postings)
          GROUP BY p.entry_id HAVING sum(p.amount_cents) <> 0
          LIMIT 1;
          IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'ledger entry % does not sum to zero', bad
              USING ERRCODE = 'check_violation';
          END IF;
          RETURN NULL;
        END $$
        """
    )
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"""
            CREATE TRIGGER postings_balanced_{event.lower()}
            AFTER {event} ON postings
            REFERENCING NEW TABLE AS new_postings
            FOR EACH STATEMENT EXECUTE FUNCTION postings_entries_balanced()
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER postings_balanced_insert ON postings")
    op.execute("DROP TRIGGER postings_balanced_update ON postings")
    op.execute("DROP FUNCTION postings_entries_balanced()")
    op.execute(
        """
        CREATE FUNCTION postings_entry_balanced() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          IF (SELECT coalesce(sum(amount_cents), 0) FROM postings
              WHERE entry_id = NEW.entry_id) <> 0 THEN
            RAISE EXCEPTION 'ledger entry % does not sum to zero', NEW.entry_id
              USING ERRCODE = 'check_violation';
          END IF;
          RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER postings_balanced
        AFTER INSERT OR UPDATE ON postings
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION postings_entry_balanced()
        """
    )
