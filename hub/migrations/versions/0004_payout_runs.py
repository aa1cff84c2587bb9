"""payout runs: settlements are appends, their allocations wait `pending`

Partial indexes for what a payout run looks for: pending allocations in
order, and withheld ones by the (owner, month) whose giving releases them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_allocations_pending",
        "allocations",
        ["id"],
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_allocations_withheld",
        "allocations",
        ["recipient", "withheld_month"],
        postgresql_where=sa.text("state = 'withheld'"),
        sqlite_where=sa.text("state = 'withheld'"),
    )


def downgrade() -> None:
    op.drop_index("ix_allocations_withheld", table_name="allocations")
    op.drop_index("ix_allocations_pending", table_name="allocations")
