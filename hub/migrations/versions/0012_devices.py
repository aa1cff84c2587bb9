"""devices: the keys that act for an account, and invitations for new ones

Issue 30: one wallet on several computers.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("added_day", sa.String(length=10), nullable=False),
        sa.Column("removed_day", sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.id"], name=op.f("fk_devices_account_accounts")
        ),
        sa.PrimaryKeyConstraint("device", name=op.f("pk_devices")),
    )
    op.create_index("ix_devices_account", "devices", ["account"])
    op.create_table(
        "invites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account"], ["accounts.id"], name=op.f("fk_invites_account_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invites")),
    )


def downgrade() -> None:
    op.drop_table("invites")
    op.drop_index("ix_devices_account", table_name="devices")
    op.drop_table("devices")
