"""Download links of exports are kept in the database.

They lived in the app's memory, so a restart (or a second app worker) turned every link handed out
into "no such export". A row holds the SHA-256 of the link's token (a copy of the database does not
hand out links), who made the export, and the file's name inside the exports folder.

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
        "export_links",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column("owner_id", sa.String(length=128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_export_links_owner_id", "export_links", ["owner_id"])


def downgrade() -> None:
    op.drop_index("ix_export_links_owner_id", table_name="export_links")
    op.drop_table("export_links")
