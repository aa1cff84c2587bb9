"""token issuance keeps its first answer: a repeat is answered, never signed again

Issue 27, point 9: each free repeat of a paid issuance of 4,500 tokens cost
the hub about 6 s of CPU. The blind signatures of the first answer are kept
(base64url, in the request's order) until the month's tokens expire.
Issuances before this revision have none: the next repeat signs once more
and keeps that answer.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("token_issues") as batch:
        batch.add_column(sa.Column("answer", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("token_issues") as batch:
        batch.drop_column("answer")
