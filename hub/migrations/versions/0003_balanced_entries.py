"""every ledger entry sums to zero, enforced by PostgreSQL at commit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

hub/ledger.py posts each entry's legs together; this makes the database
itself refuse an entry whose postings do not sum to zero, when the
transaction commits (a deferred constraint trigger: the legs are inserted
one statement at a time). SQLite has no deferred triggers: there the check
is the ledger's own (and `mecene-hub check`).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
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


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER postings_balanced ON postings")
    op.execute("DROP FUNCTION postings_entry_balanced()")
