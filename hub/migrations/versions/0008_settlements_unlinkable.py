"""settlements say whether they are unlinkable, in a column of their own

Issuance asked whether a month's settlement was unlinkable by parsing its
stored document again. The column is written when the settlement is
accepted; settlements already stored get it from their canonical document,
where an unlinkable one, and only it, holds `"unlinkable":true`
(mecene/settlement.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.add_column(
            sa.Column("unlinkable", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        sa.text("UPDATE settlements SET unlinkable = TRUE WHERE document LIKE :marked").bindparams(
            marked='%"unlinkable":true%'
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        batch.drop_column("unlinkable")
