"""unlinkable contributions: token keys, issuances, spent tokens

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("denomination_cents", sa.BigInteger(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_keys")),
        sa.UniqueConstraint(
            "month", "denomination_cents", name=op.f("uq_token_keys_month_denomination_cents")
        ),
    )
    op.create_table(
        "token_issues",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(80), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "ref", name=op.f("pk_token_issues")),
    )
    op.create_table(
        "spent_tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("creator", sa.String(600), nullable=False),
        sa.Column("creator_hash", sa.String(64), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spent_tokens")),
    )
    op.create_index("ix_spent_tokens_creator_hash", "spent_tokens", ["creator_hash"])


def downgrade() -> None:
    op.drop_index("ix_spent_tokens_creator_hash", table_name="spent_tokens")
    op.drop_table("spent_tokens")
    op.drop_table("token_issues")
    op.drop_table("token_keys")
