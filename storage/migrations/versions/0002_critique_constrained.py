"""Critiques record whether decoding was grammar-constrained; index critiques by status and reward.

Existing critiques were all unconstrained, so the new column is filled with false.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("critiques") as batch:
        batch.add_column(sa.Column("constrained", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_critiques_status_reward", "critiques", ["status", "reward"])


def downgrade() -> None:
    op.drop_index("ix_critiques_status_reward", table_name="critiques")
    with op.batch_alter_table("critiques") as batch:
        batch.drop_column("constrained")
