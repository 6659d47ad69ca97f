"""Initial schema: users, sessions, images, rounds, critiques, annotations, pair judgements.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", _enum("user_role", "designer", "annotator", "admin"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task", sa.String(8), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("task IN ('t2i', 'edit')", name="ck_sessions_task"),
    )
    op.create_index("ix_sessions_owner_created", "sessions", ["owner_id", "created_at"])
    op.create_table(
        "images",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("round_index", sa.Integer(), nullable=False),
        sa.Column("candidate_index", sa.Integer(), nullable=False),
        sa.Column("parent_round_id", sa.Integer(), sa.ForeignKey("rounds.id", ondelete="SET NULL"), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("refined_prompt", sa.Text(), nullable=False),
        sa.Column("used_prompt", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("generator_settings", sa.JSON(), nullable=False),
        sa.Column("image_sha256", sa.String(64), sa.ForeignKey("images.sha256"), nullable=False),
        sa.Column("source_image_sha256", sa.String(64), sa.ForeignKey("images.sha256"), nullable=True),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("session_id", "round_index", "candidate_index", name="uq_rounds_position"),
    )
    op.create_index("ix_rounds_session_id", "rounds", ["session_id"])
    op.create_index("ix_rounds_image_sha256", "rounds", ["image_sha256"])
    op.create_index("ix_rounds_source_image_sha256", "rounds", ["source_image_sha256"])
    op.create_table(
        "critiques",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("template_version", sa.String(64), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("parsed", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("reward_dimensions", sa.JSON(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('ok', 'partial', 'failed')", name="ck_critiques_status"),
    )
    op.create_index("ix_critiques_round_id", "critiques", ["round_id"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("critique_id", sa.Integer(), sa.ForeignKey("critiques.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dimension", sa.String(64), nullable=False),
        sa.Column("verdict", _enum("annotation_verdict", "accept", "reject", "correct"), nullable=False),
        sa.Column("corrected_score", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("annotator_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("critique_id", "dimension", "annotator_id", name="uq_annotations_once"),
    )
    op.create_index("ix_annotations_critique_id", "annotations", ["critique_id"])
    op.create_index("ix_annotations_annotator_id", "annotations", ["annotator_id"])
    op.create_table(
        "pair_judgements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("round_a_id", sa.Integer(), sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("round_b_id", sa.Integer(), sa.ForeignKey("rounds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("preference", sa.String(4), nullable=False),
        sa.Column("judge_id", sa.String(128), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("source", _enum("pair_source", "human", "derived"), nullable=False),
        sa.Column("derived_from", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("preference IN ('A', 'B', 'tie')", name="ck_pair_judgements_preference"),
        sa.CheckConstraint("round_a_id <> round_b_id", name="ck_pair_judgements_distinct"),
    )
    op.create_index("ix_pair_judgements_round_a_id", "pair_judgements", ["round_a_id"])
    op.create_index("ix_pair_judgements_round_b_id", "pair_judgements", ["round_b_id"])
    op.create_index("ix_pair_judgements_judge_id", "pair_judgements", ["judge_id"])


def downgrade() -> None:
    for table in ("pair_judgements", "annotations", "critiques", "rounds", "images", "sessions", "users"):
        op.drop_table(table)
