"""The database schema as typed SQLAlchemy 2 models. Alembic (storage/migrations) owns the real schema;
these classes must match its head revision (tests/storage/test_migrations.py checks that).

Ids that reach URLs (sessions) are random hex strings so they cannot be guessed by counting; the
rest are integers. Times are stored as naive UTC and read back as aware UTC on every backend.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_session_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """A timestamp kept as naive UTC in the database and returned as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database: pass an aware (UTC) datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Role(str, enum.Enum):
    DESIGNER = "designer"
    ANNOTATOR = "annotator"
    ADMIN = "admin"


class Verdict(str, enum.Enum):
    """An annotator's verdict on one dimension of one critique."""

    ACCEPT = "accept"
    REJECT = "reject"
    CORRECT = "correct"


class PairSource(str, enum.Enum):
    """Where a pair judgement came from: a person's pick, or derived (e.g. from critic scores)."""

    HUMAN = "human"
    DERIVED = "derived"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as VARCHAR + CHECK on every backend, so adding a value is a plain migration.
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=16,
                values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012 (SQLAlchemy's hook)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.DESIGNER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionRow(Base):
    """One Generate–Critique–Refine session (table `sessions`)."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_owner_created", "owner_id", "created_at"),
        CheckConstraint("task IN ('t2i', 'edit')", name="ck_sessions_task"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_session_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(300), default="")
    request: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when the owner deleted the session but other users' annotations or A/B picks hang on it:
    # hidden from the owner, kept for training until an admin purges it.
    hidden_at: Mapped[datetime | None] = mapped_column(default=None)
    # Rounds that ran but made no image (generation failed), so no candidate row holds them.
    skipped_rounds: Mapped[list[int] | None] = mapped_column(JSON, default=None)

    owner: Mapped[User] = relationship()
    candidates: Mapped[list[CandidateRow]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True,
        order_by="(CandidateRow.round_index, CandidateRow.candidate_index)")


class Image(Base):
    """An image file in the content-addressed store; the key is the sha256 of its PNG bytes."""

    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # The format the image came in (an upload may be JPEG); the stored file is always PNG.
    format: Mapped[str] = mapped_column(String(16))
    byte_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CandidateRow(Base):
    """One candidate image of one round: what was asked, what was used, and the result."""

    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("session_id", "round_index", "candidate_index", name="uq_rounds_position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    round_index: Mapped[int] = mapped_column(Integer)
    candidate_index: Mapped[int] = mapped_column(Integer, default=0)
    parent_candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id", ondelete="SET NULL"))
    request: Mapped[str] = mapped_column(Text)
    refined_request: Mapped[str] = mapped_column(Text, default="")
    used_prompt: Mapped[str] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    generator_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    source_image_sha256: Mapped[str | None] = mapped_column(ForeignKey("images.sha256"), index=True)
    chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[SessionRow] = relationship(back_populates="candidates")
    image: Mapped[Image] = relationship(foreign_keys=[image_sha256])
    source_image: Mapped[Image | None] = relationship(foreign_keys=[source_image_sha256])
    critiques: Mapped[list[CritiqueRow]] = relationship(
        back_populates="candidate", cascade="all, delete-orphan", passive_deletes=True,
        order_by="CritiqueRow.id")


class CritiqueRow(Base):
    """A critic's answer for one round. `parsed` is rr_core Critique.to_dict() without the raw text,
    which has its own column; status, reward and the reward's dimension set are also columns so
    they can be indexed and filtered. The prompt the critic was given and the reward spec are stored
    with it, so exports never rebuild a prompt or re-score a critique."""

    __tablename__ = "critiques"
    __table_args__ = (
        CheckConstraint("status IN ('ok', 'partial', 'failed')", name="ck_critiques_status"),
        Index("ix_critiques_status_reward", "status", "reward"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(200), default="")
    template_version: Mapped[str] = mapped_column(String(64), default="")
    raw_text: Mapped[str] = mapped_column(Text, default="")
    parsed: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(8))
    reward: Mapped[float | None] = mapped_column(Float)
    reward_dimensions: Mapped[list[str]] = mapped_column(JSON, default=list)
    # How the reward was made (rr_core RewardSpec.to_dict()); NULL on rows older than revision 0003.
    reward_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The critic's system and user turns, sharegpt style (images as <image>), as rendered when the
    # critique was made; NULL on rows older than revision 0003 until the app fills them in.
    prompt_messages: Mapped[list[dict[str, str]] | None] = mapped_column(JSON(none_as_null=True))
    constrained: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    latency_s: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    candidate: Mapped[CandidateRow] = relationship(back_populates="critiques")
    annotations: Mapped[list[Annotation]] = relationship(
        back_populates="critique", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Annotation.id")


class Annotation(Base):
    """One annotator's verdict on one dimension of one critique (the latest one per annotator counts)."""

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("critique_id", "dimension", "annotator_id", name="uq_annotations_once"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    critique_id: Mapped[int] = mapped_column(ForeignKey("critiques.id", ondelete="CASCADE"), index=True)
    dimension: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict, "annotation_verdict"))
    corrected_score: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    annotator_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    critique: Mapped[CritiqueRow] = relationship(back_populates="annotations")


class PairJudgement(Base):
    """Which of two images of the same session's request is better: A, B or a tie."""

    __tablename__ = "pair_judgements"
    __table_args__ = (
        CheckConstraint("preference IN ('A', 'B', 'tie')", name="ck_pair_judgements_preference"),
        CheckConstraint("candidate_a_id <> candidate_b_id", name="ck_pair_judgements_distinct"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_a_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    candidate_b_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"), index=True)
    preference: Mapped[str] = mapped_column(String(4))
    judge_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    source: Mapped[PairSource] = mapped_column(_enum(PairSource, "pair_source"))
    # For derived judgements: what they were derived from (e.g. the critic's model id).
    derived_from: Mapped[str] = mapped_column(String(200), default="")
    # The round the judge saw on the left (sides are shuffled per pair); NULL for derived judgements
    # and for rows older than revision 0005. Position bias is read from it.
    left_candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    candidate_a: Mapped[CandidateRow] = relationship(foreign_keys=[candidate_a_id])
    candidate_b: Mapped[CandidateRow] = relationship(foreign_keys=[candidate_b_id])


class ReviewLease(Base):
    """An item of a review queue handed to one reviewer until `expires_at`: while it holds, no other
    reviewer is given the same item. Kept in the database so every app worker sees it. `item` is
    "critique:<id>" or "pair:<low candidate id>-<high candidate id>"."""

    __tablename__ = "review_leases"

    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column()


class ExportLink(Base):
    """A download link of an export: the SHA-256 of its token (never the token), who made it, and the
    file's name inside the exports folder. In the database so a restart or another worker serves it."""

    __tablename__ = "export_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(32))
    record_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
