"""Sessions remember the rounds whose generation failed.

Such a round stores no candidate row, so a session whose last round failed read back one round
short of the live run (and its next round got the failed round's number). `skipped_rounds` lists
their indices; NULL means none.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


# In place on both backends (SQLite >= 3.35 drops a column itself): no copy of the table.
def upgrade() -> None:
    with op.batch_alter_table("sessions", recreate="never") as batch:
        batch.add_column(sa.Column("skipped_rounds", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", recreate="never") as batch:
        batch.drop_column("skipped_rounds")
