"""Review data: the side each pair judgement was shown on, and leases on review items.

`pair_judgements.left_round_id` records which image the judge saw on the left (A/B sides are
shuffled per pair), so position bias can be measured; older rows and derived judgements leave it
NULL. `review_leases` holds the items handed out to a reviewer until a time, so two annotators are
not given the same item at once, whichever app worker serves them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pair_judgements") as batch:
        batch.add_column(sa.Column("left_round_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_pair_judgements_left_round_id_rounds", "rounds", ["left_round_id"], ["id"],
                                 ondelete="SET NULL")
    op.create_table(
        "review_leases",
        sa.Column("item", sa.String(length=64), primary_key=True),
        sa.Column("holder_id", sa.String(length=128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_review_leases_holder_id", "review_leases", ["holder_id"])


def downgrade() -> None:
    op.drop_index("ix_review_leases_holder_id", table_name="review_leases")
    op.drop_table("review_leases")
    with op.batch_alter_table("pair_judgements") as batch:
        batch.drop_constraint("fk_pair_judgements_left_round_id_rounds", type_="foreignkey")
        batch.drop_column("left_round_id")
