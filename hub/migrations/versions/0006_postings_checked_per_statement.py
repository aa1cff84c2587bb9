"""postings: balance and references checked once per statement, by index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Measured on a payout run (bench/hub_payout_run.py --profile): inserting a
chunk's postings was the run's most expensive statement, and it grew with
the table.

- Migration 0005's check summed `postings WHERE entry_id IN (SELECT ...
  FROM new_postings)`. The planner has no statistics for a transition table
  and scanned all of `postings`: 2,000 postings cost 290 ms over 800,000
  stored rows, against 145 ms with no check. The check now sums each
  touched entry through the `entry_id` index: 146 ms.
- The two foreign keys of `postings` ran a row trigger per posting, each
  locking the row it refers to (FOR KEY SHARE): about 30 µs per posting
  and per key. The same statement-level trigger now checks, by one lookup
  per distinct name and entry (not a join, whose plan stale statistics
  spoilt), that every new posting names an existing entry and ledger account;
  entries and ledger accounts are never deleted or renamed (triggers below
  refuse it), which is what the foreign keys' locks protected against.
  2,000 postings: 15 ms without the foreign keys, 115 ms with them.

SQLite keeps its foreign keys (they cost little in one process); there the
balance check is the ledger's own and `mecene-hub check`'s.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHECK = """
CREATE OR REPLACE FUNCTION postings_entries_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  entry bigint;
  name_ text;
BEGIN
  -- One lookup by primary key or index per distinct name and entry,
  -- whatever the statistics say: with stale ones (autovacuum off, a table
  -- grown since its last ANALYZE) a join let the planner choose a nested
  -- loop over a sequential scan of entries for every posting: 556 ms for
  -- 2,000 postings.
  FOR name_ IN SELECT DISTINCT ledger_account FROM new_postings LOOP
    PERFORM 1 FROM ledger_accounts WHERE name = name_;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'posting to ledger account % that does not exist', name_
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  END LOOP;
  FOR entry IN SELECT DISTINCT entry_id FROM new_postings LOOP
    PERFORM 1 FROM entries WHERE id = entry;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'posting to ledger entry % that does not exist', entry
        USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF (SELECT coalesce(sum(amount_cents), 0) FROM postings WHERE entry_id = entry) <> 0 THEN
      RAISE EXCEPTION 'ledger entry % does not sum to zero', entry
        USING ERRCODE = 'check_violation';
    END IF;
  END LOOP;
  RETURN NULL;
END $$
"""

PREVIOUS_CHECK = """
CREATE OR REPLACE FUNCTION postings_entries_balanced() RETURNS trigger
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

NEVER_REMOVED = """
CREATE FUNCTION ledger_rows_stay() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are never deleted, and their keys never change', TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CHECK)
    op.drop_constraint("fk_postings_entry_id_entries", "postings", type_="foreignkey")
    op.drop_constraint("fk_postings_ledger_account_ledger_accounts", "postings", type_="foreignkey")
    op.execute(NEVER_REMOVED)
    op.execute(
        "CREATE TRIGGER entries_stay BEFORE DELETE OR UPDATE OF id ON entries "
        "FOR EACH ROW EXECUTE FUNCTION ledger_rows_stay()"
    )
    op.execute(
        "CREATE TRIGGER ledger_accounts_stay BEFORE DELETE OR UPDATE OF name ON ledger_accounts "
        "FOR EACH ROW EXECUTE FUNCTION ledger_rows_stay()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER ledger_accounts_stay ON ledger_accounts")
    op.execute("DROP TRIGGER entries_stay ON entries")
    op.execute("DROP FUNCTION ledger_rows_stay()")
    op.create_foreign_key(
        "fk_postings_ledger_account_ledger_accounts",
        "postings",
        "ledger_accounts",
        ["ledger_account"],
        ["name"],
    )
    op.create_foreign_key(
        "fk_postings_entry_id_entries", "postings", "entries", ["entry_id"], ["id"]
    )
    op.execute(PREVIOUS_CHECK)
