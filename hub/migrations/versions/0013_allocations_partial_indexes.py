"""allocations: indexes only over the rows their look-ups read

Issue 31, "acceptance writes little". Every look-up by creator key reads
money in escrow, and every look-up by recipient reads routed money. An
accepted allocation is neither, yet it was entered into both indexes; so was
every routed one into the creator index. Partial indexes take two index
entries off each accepted allocation and one off each routed one.

The index by month becomes one by (giver, month): a giver asking what became
of its settlement (GET /v1/settlements/{month}) read every allocation of the
month to find its own twenty. The reports of a whole month are the
operator's (`mecene-hub payouts`), and read the month's rows anyway.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_allocations_escrow",
        "allocations",
        ["creator", "month"],
        postgresql_where=sa.text("state = 'escrow'"),
        sqlite_where=sa.text("state = 'escrow'"),
    )
    op.create_index(
        "ix_allocations_routed",
        "allocations",
        ["recipient", "month"],
        postgresql_where=sa.text("recipient IS NOT NULL"),
        sqlite_where=sa.text("recipient IS NOT NULL"),
    )
    op.create_index("ix_allocations_account_month", "allocations", ["account", "month"])
    op.drop_index("ix_allocations_creator_state", table_name="allocations")
    op.drop_index("ix_allocations_recipient_month", table_name="allocations")
    op.drop_index("ix_allocations_month", table_name="allocations")


def downgrade() -> None:
    op.create_index("ix_allocations_month", "allocations", ["month"])
    op.create_index("ix_allocations_recipient_month", "allocations", ["recipient", "month"])
    op.create_index("ix_allocations_creator_state", "allocations", ["creator", "state"])
    op.drop_index("ix_allocations_routed", table_name="allocations")
    op.drop_index("ix_allocations_escrow", table_name="allocations")
    op.drop_index("ix_allocations_account_month", table_name="allocations")
