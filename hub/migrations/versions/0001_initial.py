"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("nonprofit", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "allocations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("creator", sa.String(length=600), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=True),
        sa.Column("fee_cents", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", sa.BigInteger(), nullable=True),
        sa.Column("withheld_month", sa.String(length=7), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_index("ix_allocations_creator_state", ["creator", "state"], unique=False)
        batch_op.create_index("ix_allocations_month", ["month"], unique=False)
        batch_op.create_index(
            "ix_allocations_recipient_month", ["recipient", "month"], unique=False
        )

    op.create_table(
        "counter_people",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject_hash", "account", name=op.f("pk_counter_people")),
    )
    op.create_table(
        "entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=700), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("reverses", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["reverses"], ["entries.id"], name=op.f("fk_entries_reverses_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
        sa.UniqueConstraint("kind", "ref", name=op.f("uq_entries_kind_ref")),
    )
    op.create_table(
        "giving",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("gave", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.PrimaryKeyConstraint("account", "month", name=op.f("pk_giving")),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("name", sa.String(length=600), nullable=False),
        sa.Column("balance_cents", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "may_go_negative", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.CheckConstraint(
            "may_go_negative OR balance_cents >= 0", name=op.f("ck_ledger_accounts_not_negative")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_accounts")),
    )
    op.create_table(
        "nonces",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "nonce", name=op.f("pk_nonces")),
    )
    with op.batch_alter_table("nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nonces_ts"), ["ts"], unique=False)

    op.create_table(
        "claims",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=600), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("verified_at", sa.BigInteger(), nullable=True),
        sa.Column("proof", sa.String(length=2048), nullable=True),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.id"], name=op.f("fk_claims_account_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claims_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_claims_key"), ["key"], unique=False)

    op.create_table(
        "creator_keys",
        sa.Column("key", sa.String(length=600), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("verified_at", sa.BigInteger(), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner"], ["accounts.id"], name=op.f("fk_creator_keys_owner_accounts")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_creator_keys")),
    )
    with op.batch_alter_table("creator_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_creator_keys_owner"), ["owner"], unique=False)

    op.create_table(
        "deposits",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.id"], name=op.f("fk_deposits_account_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["entries.id"], name=op.f("fk_deposits_entry_id_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposits")),
    )
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deposits_account"), ["account"], unique=False)

    op.create_table(
        "postings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ledger_account", sa.String(length=600), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["entries.id"], name=op.f("fk_postings_entry_id_entries")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_account"],
            ["ledger_accounts.name"],
            name=op.f("fk_postings_ledger_account_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_postings_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_postings_ledger_account"), ["ledger_account"], unique=False
        )

    op.create_table(
        "settlements",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("spend_cents", sa.BigInteger(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.Column("receipt_signature", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.id"], name=op.f("fk_settlements_account_accounts")
        ),
        sa.PrimaryKeyConstraint("account", "month", name=op.f("pk_settlements")),
    )
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_index("ix_settlements_month", ["month"], unique=False)

    op.create_table(
        "withdrawals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.id"], name=op.f("fk_withdrawals_account_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["entries.id"], name=op.f("fk_withdrawals_entry_id_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
    )
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_withdrawals_account"), ["account"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawals_account"))

    op.drop_table("withdrawals")
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index("ix_settlements_month")

    op.drop_table("settlements")
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_postings_ledger_account"))
        batch_op.drop_index(batch_op.f("ix_postings_entry_id"))

    op.drop_table("postings")
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deposits_account"))

    op.drop_table("deposits")
    with op.batch_alter_table("creator_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_creator_keys_owner"))

    op.drop_table("creator_keys")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claims_key"))
        batch_op.drop_index(batch_op.f("ix_claims_account"))

    op.drop_table("claims")
    with op.batch_alter_table("nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nonces_ts"))

    op.drop_table("nonces")
    op.drop_table("ledger_accounts")
    op.drop_table("giving")
    op.drop_table("entries")
    op.drop_table("counter_people")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index("ix_allocations_recipient_month")
        batch_op.drop_index("ix_allocations_month")
        batch_op.drop_index("ix_allocations_creator_state")

    op.drop_table("allocations")
    op.drop_table("accounts")
