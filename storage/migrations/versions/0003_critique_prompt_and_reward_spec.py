"""Critiques keep what made them: the rendered critic conversation and the reward spec.

Exports then read what was stored instead of rebuilding prompts or re-scoring (storage does
persistence only). Rows written before this revision have neither: both columns are NULL, and
docs/architecture.md and storage/FORMATS.md give the rule for them (the app fills the conversation
in when it starts; the reward spec of an old row is its recorded reward dimensions, equal weights).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("critiques") as batch:
        batch.add_column(sa.Column("prompt_messages", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reward_spec", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("critiques") as batch:
        batch.drop_column("reward_spec")
        batch.drop_column("prompt_messages")
