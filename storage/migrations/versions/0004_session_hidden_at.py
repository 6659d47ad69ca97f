"""Sessions can be hidden from their owner instead of deleted.

When a designer deletes a session on which other users' annotations or A/B picks hang, deleting it
would take their training data with it; the session is hidden from its owner instead (`hidden_at`
set) and only an admin's explicit purge removes it. NULL means visible.

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
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("hidden_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("hidden_at")
