"""Repository functions used by the loop and the app.

Every function takes a SQLAlchemy Session and never commits: the caller owns the transaction (use
storage.db.write_transaction for writes). Every function that takes an id a user could have typed
checks it against the acting user: a designer reaches only their own sessions; annotators and admins
may read and annotate every session's critiques, and only admins may delete another user's session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import String, case, cast, delete, distinct, func, literal, or_, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from rr_core.critique import Critique, Preference
from rr_core.rubric import SCORE_MAX, SCORE_MIN, Task, dimension_keys
from storage.errors import NotFound, SessionAccessDenied
from storage.images import ImageStore, StoredImage
from storage.models import (
    Annotation,
    CritiqueRow,
    ExportLink,
    Image,
    PairJudgement,
    PairSource,
    ReviewLease,
    Role,
    CandidateRow,
    SessionRow,
    User,
    Verdict,
    utcnow,
)

MAX_PAGE = 500


# --- users -------------------------------------------------------------------------------------

def get_or_create_user(session: Session, user_id: str, display_name: str = "",
                       role: Role | str = Role.DESIGNER) -> User:
    """The user with this stable id, created on first sight (role and name only set on creation)."""
    if not user_id or len(user_id) > 128:
        raise ValueError("a user id must be 1 to 128 characters")
    user = session.get(User, user_id)
    if user is None:
        user = User(id=user_id, display_name=display_name or user_id, role=Role(role))
        session.add(user)
        session.flush()
    return user


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    return user


def set_role(session: Session, *, admin_id: str, user_id: str, role: Role | str) -> User:
    """Change a user's role; only an admin may."""
    if get_user(session, admin_id).role is not Role.ADMIN:
        raise SessionAccessDenied("only an admin can change roles")
    user = get_user(session, user_id)
    user.role = Role(role)
    return user


# --- sessions ----------------------------------------------------------------------------------

def create_session(session: Session, *, owner_id: str, task: Task | str, request: str, title: str = "",
                   settings: dict[str, Any] | None = None, session_id: str | None = None) -> SessionRow:
    """A new session owned by `owner_id` (who must exist). `session_id` lets a run name its session
    before the row is written (with its first round); a fresh random id otherwise."""
    get_user(session, owner_id)
    row = SessionRow(owner_id=owner_id, task=Task.parse(task).value, request=request,
                        title=(title or request)[:300], settings=dict(settings or {}))
    if session_id is not None:
        row.id = session_id
    session.add(row)
    session.flush()
    return row


def list_sessions(session: Session, owner_id: str, search: str | None = None, limit: int = 50,
                  offset: int = 0) -> list[SessionRow]:
    """The owner's sessions, newest first; `search` matches title or prompt (case-insensitive)."""
    limit = max(1, min(int(limit), MAX_PAGE))
    query = select(SessionRow).where(SessionRow.owner_id == owner_id, SessionRow.hidden_at.is_(None))
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(SessionRow.title.ilike(pattern, escape="\\"),
                                SessionRow.request.ilike(pattern, escape="\\")))
    query = query.order_by(SessionRow.created_at.desc(), SessionRow.id).limit(limit).offset(max(0, offset))
    return list(session.scalars(query))


def count_sessions(session: Session, owner_id: str) -> int:
    """How many sessions `owner_id` has and sees (one COUNT query, no page limit; hidden ones left out)."""
    return int(session.scalar(select(func.count()).select_from(SessionRow)
                              .where(SessionRow.owner_id == owner_id, SessionRow.hidden_at.is_(None))) or 0)


def round_counts(session: Session, session_ids: Sequence[str]) -> dict[str, int]:
    """Per session id, how many rounds (distinct round indexes) it has stored; absent ids have none."""
    if not session_ids:
        return {}
    query = (select(CandidateRow.session_id, func.count(distinct(CandidateRow.round_index)))
             .where(CandidateRow.session_id.in_(list(session_ids))).group_by(CandidateRow.session_id))
    return {session_id: int(count) for session_id, count in session.execute(query)}


def get_session_for_user(session: Session, session_id: str, user_id: str, *,
                         write: bool = False) -> SessionRow:
    """The session if `user_id` may see it (owner; annotators and admins read all; only the owner or an
    admin may change it). A session the user may not see raises the same NotFound, with the same
    text, as one that does not exist, so ids cannot be probed. SessionAccessDenied is left for a
    reviewer who can read the session but not change it."""
    row = session.get(SessionRow, session_id) if isinstance(session_id, str) else None
    user = session.get(User, user_id) if row is not None else None
    role = user.role if user is not None else None
    readable = row is not None and (role in (Role.ADMIN, Role.ANNOTATOR)
                                    or (row.owner_id == user_id and row.hidden_at is None))
    if not readable:
        raise NotFound(f"no session {str(session_id)[:40]!r}")
    if write and row.owner_id != user_id and role is not Role.ADMIN:
        raise SessionAccessDenied("this session belongs to another user")
    return row


@dataclass(frozen=True)
class SessionRemoval:
    """What deleting a session did: hidden from its owner (other users' data hangs on it), or purged;
    `freed_images` are the image rows deleted with it, whose files the caller may now delete."""

    hidden: bool
    freed_images: list[str]


def others_data_on_session(session: Session, row: SessionRow) -> bool:
    """Whether users other than the owner annotated a critique of this session or picked between two
    of its images: their training data, which deleting the session would take with it."""
    candidate_ids = select(CandidateRow.id).where(CandidateRow.session_id == row.id)
    annotations = (select(Annotation.id).join(CritiqueRow, Annotation.critique_id == CritiqueRow.id)
                   .where(CritiqueRow.candidate_id.in_(candidate_ids), Annotation.annotator_id != row.owner_id))
    picks = select(PairJudgement.id).where(
        or_(PairJudgement.candidate_a_id.in_(candidate_ids), PairJudgement.candidate_b_id.in_(candidate_ids)),
        PairJudgement.judge_id.is_not(None), PairJudgement.judge_id != row.owner_id)
    return bool(session.scalar(select(annotations.exists())) or session.scalar(select(picks.exists())))


def delete_session(session: Session, session_id: str, user_id: str) -> SessionRemoval:
    """Delete a session for its owner (or an admin). When other users' annotations or A/B picks hang
    on it, it is only hidden from its owner (their training data stays; `purge_session` is the admin's
    way to remove it anyway). Otherwise its rounds, critiques, annotations, pair judgements and the
    image rows no other session uses are deleted; their files are the caller's to delete after the
    commit (`ImageStore.remove_unless_touched`), since a rollback must not lose a file."""
    row = get_session_for_user(session, session_id, user_id, write=True)
    if others_data_on_session(session, row):
        row.hidden_at = utcnow()
        session.flush()
        return SessionRemoval(hidden=True, freed_images=[])
    return SessionRemoval(hidden=False, freed_images=_purge(session, row))


def _require_admin(session: Session, user_id: str, what: str) -> None:
    user = session.get(User, user_id)
    if user is None or user.role is not Role.ADMIN:
        raise SessionAccessDenied(f"only an admin can {what}")


def purge_session(session: Session, session_id: str, admin_id: str) -> list[str]:
    """An admin's explicit removal of a session with everything on it, other users' annotations and
    picks included. Returns the freed image hashes (as delete_session)."""
    _require_admin(session, admin_id, "purge a session")
    return _purge(session, get_session_for_user(session, session_id, admin_id, write=True))


def hidden_sessions(session: Session, admin_id: str, limit: int = MAX_PAGE) -> list[SessionRow]:
    """The sessions their owners deleted but other users' annotations or picks kept (hidden_at set),
    most recently hidden first: what an admin may purge."""
    _require_admin(session, admin_id, "list hidden sessions")
    limit = max(1, min(int(limit), MAX_PAGE))
    return list(session.scalars(select(SessionRow).where(SessionRow.hidden_at.is_not(None))
                                .order_by(SessionRow.hidden_at.desc(), SessionRow.id).limit(limit)))


def annotation_counts(session: Session, session_ids: Sequence[str]) -> dict[str, int]:
    """Per session id, how many annotations (one per critique dimension judged) its critiques have."""
    if not session_ids:
        return {}
    query = (select(CandidateRow.session_id, func.count(Annotation.id))
             .join(CritiqueRow, Annotation.critique_id == CritiqueRow.id)
             .join(CandidateRow, CritiqueRow.candidate_id == CandidateRow.id)
             .where(CandidateRow.session_id.in_(list(session_ids))).group_by(CandidateRow.session_id))
    return {session_id: int(count) for session_id, count in session.execute(query)}


def pick_counts(session: Session, session_ids: Sequence[str]) -> dict[str, int]:
    """Per session id, how many A/B picks involve one of its images (each pick once; a pick counts for
    every session whose purge would remove it, as `_purge` removes a pick with either image)."""
    if not session_ids:
        return {}
    ends = union(*(select(PairJudgement.id.label("pick"), CandidateRow.session_id.label("session_id"))
                   .join(CandidateRow, CandidateRow.id == column) for column in
                   (PairJudgement.candidate_a_id, PairJudgement.candidate_b_id))).subquery()
    query = (select(ends.c.session_id, func.count()).where(ends.c.session_id.in_(list(session_ids)))
             .group_by(ends.c.session_id))
    return {session_id: int(count) for session_id, count in session.execute(query)}


@dataclass(frozen=True)
class SessionContents:
    """What purging a session removes: its rows, the annotations and picks on it (by `reviewers`),
    and `freed_images`, the hashes of images no other session uses."""

    row: SessionRow
    rounds: int
    images: int
    critiques: int
    annotations: int
    picks: int
    reviewers: list[str]
    freed_images: list[str]


def session_contents(session: Session, session_id: str, admin_id: str) -> SessionContents:
    """Everything `purge_session` would remove from this session, counted (admins only)."""
    _require_admin(session, admin_id, "purge a session")
    row = get_session_for_user(session, session_id, admin_id, write=True)
    candidate_ids = select(CandidateRow.id).where(CandidateRow.session_id == row.id)
    critiques = select(CritiqueRow.id).where(CritiqueRow.candidate_id.in_(candidate_ids))
    annotators = select(Annotation.annotator_id).where(Annotation.critique_id.in_(critiques))
    judges = select(PairJudgement.judge_id).where(
        or_(PairJudgement.candidate_a_id.in_(candidate_ids), PairJudgement.candidate_b_id.in_(candidate_ids)),
        PairJudgement.judge_id.is_not(None))
    return SessionContents(
        row=row, rounds=round_counts(session, [row.id]).get(row.id, 0),
        images=int(session.scalar(select(func.count()).select_from(candidate_ids.subquery())) or 0),
        critiques=int(session.scalar(select(func.count()).select_from(critiques.subquery())) or 0),
        annotations=annotation_counts(session, [row.id]).get(row.id, 0),
        picks=pick_counts(session, [row.id]).get(row.id, 0),
        reviewers=sorted(set(session.scalars(union(annotators, judges)))),
        freed_images=_images_only_in(session, row.id))


def _images_only_in(session: Session, session_id: str) -> list[str]:
    """The hashes of the images (results and edit sources) of this session that no other session uses:
    the image rows and files a purge frees."""
    columns = (CandidateRow.image_sha256, CandidateRow.source_image_sha256)
    here = session.execute(select(*columns).where(CandidateRow.session_id == session_id))
    used = {sha for pair in here for sha in pair if sha}
    if not used:
        return []
    elsewhere = union(*(select(column).where(CandidateRow.session_id != session_id, column.in_(used))
                        for column in columns))
    return sorted(used - set(session.scalars(elsewhere)))


def _purge(session: Session, row: SessionRow) -> list[str]:
    candidate_ids = select(CandidateRow.id).where(CandidateRow.session_id == row.id)
    freed = _images_only_in(session, row.id)
    # Explicit deletes so the result does not depend on the backend enforcing ON DELETE CASCADE.
    session.execute(delete(PairJudgement).where(
        or_(PairJudgement.candidate_a_id.in_(candidate_ids), PairJudgement.candidate_b_id.in_(candidate_ids))))
    critique_ids = select(CritiqueRow.id).where(CritiqueRow.candidate_id.in_(candidate_ids))
    session.execute(delete(Annotation).where(Annotation.critique_id.in_(critique_ids)))
    session.execute(delete(CritiqueRow).where(CritiqueRow.candidate_id.in_(candidate_ids)))
    session.execute(delete(CandidateRow).where(CandidateRow.session_id == row.id).execution_options(
        synchronize_session=False))
    session.delete(row)
    session.flush()
    if freed:
        session.execute(delete(Image).where(Image.sha256.in_(freed)).execution_options(synchronize_session=False))
    return freed


# --- images and rounds -------------------------------------------------------------------------

def note_skipped_round(session: Session, session_id: str, round_index: int) -> None:
    """Remember that round `round_index` ran and made no image, so a reopened session keeps it."""
    row = session.get(SessionRow, session_id)
    if row is None:
        raise NotFound(f"no session {session_id}")
    row.skipped_rounds = sorted({*(row.skipped_rounds or []), int(round_index)})  # a new list: the change is seen
    session.flush()


def store_image(session: Session, store: ImageStore, image: PILImage.Image) -> Image:
    """Write `image` to the store (file first) and make sure its row exists; safe under concurrency."""
    stored = store.put(image)
    _insert_image_row(session, stored)
    return session.get(Image, stored.sha256)


def _insert_image_row(session: Session, stored: StoredImage) -> None:
    values = {"sha256": stored.sha256, "width": stored.width, "height": stored.height, "format": stored.format,
                  "byte_size": stored.byte_size}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = postgresql.insert(Image).values(**values).on_conflict_do_nothing(index_elements=["sha256"])
    elif dialect == "sqlite":
        statement = sqlite.insert(Image).values(**values).on_conflict_do_nothing(index_elements=["sha256"])
    else:
        if session.get(Image, stored.sha256) is None:
            session.add(Image(**values))
            session.flush()
        return
    session.execute(statement)


def record_candidate(session: Session, *, store: ImageStore, session_id: str, owner_id: str, request: str,
                 image: PILImage.Image, critique: Critique | None, round_index: int, candidate_index: int = 0,
                 used_prompt: str | None = None, refined_request: str | None = None, seed: int | None = None,
                 generator_settings: dict[str, Any] | None = None, source_image: PILImage.Image | None = None,
                 parent_candidate_id: int | None = None, chosen: bool = False,
                 reward_spec: dict[str, Any] | None = None,
                 prompt_messages: list[dict[str, str]] | None = None) -> CandidateRow:
    """Record one candidate of one round: its image (and source image) in the store, the candidate row and
    the critique row. Commit once per round (write_transaction): a crash then loses at most this round.

    `refined_request` defaults to the critique's refined request; `used_prompt` to `prompt`.
    `reward_spec` and `prompt_messages` are stored with the critique (see add_critique).
    """
    owned = get_session_for_user(session, session_id, owner_id, write=True)
    if critique is not None and critique.task.value != owned.task:
        raise ValueError(f"critique is for task {critique.task.value!r}, session is {owned.task!r}")
    if owned.task == Task.EDIT.value and source_image is None:
        raise ValueError("an edit round needs its source image")
    if parent_candidate_id is not None:
        _candidate_in_session(session, parent_candidate_id, owned.id)
    image_row = store_image(session, store, image)
    source_row = store_image(session, store, source_image) if source_image is not None else None
    if refined_request is None:
        refined_request = critique.refined_request if critique is not None else ""
    row = CandidateRow(session_id=owned.id, round_index=round_index, candidate_index=candidate_index,
                parent_candidate_id=parent_candidate_id, request=request, refined_request=refined_request,
                used_prompt=request if used_prompt is None else used_prompt, seed=seed,
                generator_settings=dict(generator_settings or {}), image_sha256=image_row.sha256,
                source_image_sha256=source_row.sha256 if source_row is not None else None, chosen=chosen)
    session.add(row)
    session.flush()
    if critique is not None:
        add_critique(session, candidate_id=row.id, critique=critique, reward_spec=reward_spec,
                     prompt_messages=prompt_messages)
    return row


def _candidate_in_session(session: Session, candidate_id: int, session_id: str) -> CandidateRow:
    row = session.get(CandidateRow, candidate_id)
    if row is None or row.session_id != session_id:
        raise NotFound(f"no candidate {candidate_id} in this session")
    return row


def add_critique(session: Session, *, candidate_id: int, critique: Critique,
                 reward_spec: dict[str, Any] | None = None,
                 prompt_messages: list[dict[str, str]] | None = None) -> CritiqueRow:
    """Store a critique for a round (several critics may judge one round). Not user-facing: the
    application layer calls it with the round it just wrote. `reward_spec` is how the reward was
    made and `prompt_messages` the critic's rendered system and user turns, kept so that exports
    read them instead of rebuilding the prompt or re-scoring."""
    parsed = critique.to_dict()
    raw_text = parsed.pop("raw_text")
    row = CritiqueRow(candidate_id=candidate_id, model_id=critique.model_id, template_version=critique.template_version,
                      raw_text=raw_text, parsed=parsed, status=critique.status.value, reward=critique.reward,
                      reward_dimensions=list(critique.reward_dimensions), constrained=critique.constrained,
                      latency_s=critique.latency_s, prompt_tokens=critique.prompt_tokens,
                      completion_tokens=critique.completion_tokens,
                      reward_spec=dict(reward_spec) if reward_spec is not None else None,
                      prompt_messages=[dict(m) for m in prompt_messages] if prompt_messages is not None else None)
    session.add(row)
    session.flush()
    return row


def critique_from_row(row: CritiqueRow) -> Critique:
    """The rr_core Critique a row was made from."""
    return Critique.from_dict({**row.parsed, "raw_text": row.raw_text})


def session_candidates(session: Session, session_id: str, user_id: str) -> list[CandidateRow]:
    owned = get_session_for_user(session, session_id, user_id)
    return list(session.scalars(select(CandidateRow).where(CandidateRow.session_id == owned.id)
                                .order_by(CandidateRow.round_index, CandidateRow.candidate_index)))


def get_candidate_for_user(session: Session, candidate_id: int, user_id: str, *, write: bool = False) -> CandidateRow:
    row = session.get(CandidateRow, candidate_id)
    try:
        if row is None:
            raise NotFound("")
        get_session_for_user(session, row.session_id, user_id, write=write)
    except NotFound:
        raise NotFound(f"no candidate {candidate_id}") from None
    return row


def set_chosen(session: Session, *, candidate_id: int, user_id: str, chosen: bool = True) -> CandidateRow:
    row = get_candidate_for_user(session, candidate_id, user_id, write=True)
    row.chosen = chosen
    return row


# --- annotations -------------------------------------------------------------------------------

def get_critique(session: Session, critique_id: int) -> CritiqueRow:
    """A critique row by id, for callers that have already checked access (a lease, a review item)."""
    row = session.get(CritiqueRow, critique_id)
    if row is None:
        raise NotFound(f"no critique {critique_id}")
    return row


def get_critique_for_user(session: Session, critique_id: int, user_id: str) -> CritiqueRow:
    row = session.get(CritiqueRow, critique_id)
    try:
        if row is None:
            raise NotFound("")
        get_session_for_user(session, row.candidate.session_id, user_id)
    except NotFound:
        raise NotFound(f"no critique {critique_id}") from None
    return row


def add_annotation(session: Session, *, critique_id: int, annotator_id: str, dimension: str,
                   verdict: Verdict | str, corrected_score: float | None = None, comment: str = "") -> Annotation:
    """Record (or replace) the annotator's verdict on one dimension of one critique."""
    critique = get_critique_for_user(session, critique_id, annotator_id)
    verdict = Verdict(verdict)
    task = critique.parsed.get("task", critique.candidate.session.task)
    if dimension not in dimension_keys(task):
        raise ValueError(f"task {task!r} has no dimension {dimension!r}")
    if verdict is Verdict.CORRECT:
        if corrected_score is None or not SCORE_MIN <= float(corrected_score) <= SCORE_MAX:
            raise ValueError(f"a correction needs a score from {SCORE_MIN:g} to {SCORE_MAX:g}")
        corrected_score = float(corrected_score)
    elif corrected_score is not None:
        raise ValueError("only a 'correct' verdict carries a corrected score")
    row = session.scalar(select(Annotation).where(
        Annotation.critique_id == critique_id, Annotation.dimension == dimension,
        Annotation.annotator_id == annotator_id))
    if row is None:
        row = Annotation(critique_id=critique_id, dimension=dimension, annotator_id=annotator_id,
                         verdict=verdict, corrected_score=corrected_score, comment=comment)
        session.add(row)
    else:  # a new time too, so "the last submit" (undo) is the one just made
        row.verdict, row.corrected_score, row.comment = verdict, corrected_score, comment
        row.created_at = utcnow()
    session.flush()
    return row


# --- pair judgements ---------------------------------------------------------------------------

def add_pair_judgement(session: Session, *, candidate_a_id: int, candidate_b_id: int, preference: Preference | str,
                       judge_id: str | None, source: PairSource | str = PairSource.HUMAN,
                       derived_from: str = "", acting_user_id: str | None = None,
                       left_candidate_id: int | None = None) -> PairJudgement:
    """Record which of two images of the same session is better. A human judgement needs its judge
    (who must be allowed to see the session); a derived one names what it came from.
    `left_candidate_id` is the image the judge saw on the left (one of the two)."""
    source = PairSource(source)
    preference = Preference(preference).value
    if candidate_a_id == candidate_b_id:
        raise ValueError("a pair needs two different candidates")
    if source is PairSource.HUMAN and not judge_id:
        raise ValueError("a human judgement needs its judge")
    if source is PairSource.DERIVED and not derived_from:
        raise ValueError("a derived judgement must say what it was derived from")
    actor = judge_id or acting_user_id
    if actor is None:
        raise ValueError("name the acting user")
    candidate_a = get_candidate_for_user(session, candidate_a_id, actor)
    candidate_b = get_candidate_for_user(session, candidate_b_id, actor)
    if candidate_a.session_id != candidate_b.session_id:
        raise ValueError("both images of a pair must come from the same session's request")
    if left_candidate_id is not None and left_candidate_id not in (candidate_a_id, candidate_b_id):
        raise ValueError(f"the left image {left_candidate_id} is not one of the pair ({candidate_a_id}, {candidate_b_id})")
    row = PairJudgement(candidate_a_id=candidate_a_id, candidate_b_id=candidate_b_id, preference=preference, judge_id=judge_id,
                        source=source, derived_from=derived_from, left_candidate_id=left_candidate_id)
    session.add(row)
    session.flush()
    return row


# --- counts ------------------------------------------------------------------------------------

def count_preference_pairs(session: Session, *, task: Task | str | None = None,
                           source: PairSource | str | None = None, owner_id: str | None = None) -> int:
    """Distinct unordered image pairs with at least one judgement (of `owner_id`'s sessions, if given)."""
    pairs = _pair_key_query(task, source, owner_id).subquery()
    return int(session.scalar(select(func.count()).select_from(pairs)) or 0)


def _pair_key_query(task: Task | str | None, source: PairSource | str | None, owner_id: str | None = None) -> Any:
    low, high = _pair_ends()
    query = select(low.label("low"), high.label("high")).distinct()
    if task is not None or owner_id is not None:
        query = (query.join(CandidateRow, PairJudgement.candidate_a_id == CandidateRow.id)
                 .join(SessionRow, CandidateRow.session_id == SessionRow.id))
    if task is not None:
        query = query.where(SessionRow.task == Task.parse(task).value)
    if owner_id is not None:
        query = query.where(SessionRow.owner_id == owner_id)
    if source is not None:
        query = query.where(PairJudgement.source == PairSource(source))
    return query


def count_annotated_critiques(session: Session, *, task: Task | str | None = None,
                              annotator_id: str | None = None, owner_id: str | None = None) -> int:
    """Critiques with at least one annotation (by `annotator_id`, of `owner_id`'s sessions, if given)."""
    query = select(func.count(distinct(Annotation.critique_id)))
    if annotator_id is not None:
        query = query.where(Annotation.annotator_id == annotator_id)
    if task is not None or owner_id is not None:
        query = (query.join(CritiqueRow, Annotation.critique_id == CritiqueRow.id)
                 .join(CandidateRow, CritiqueRow.candidate_id == CandidateRow.id)
                 .join(SessionRow, CandidateRow.session_id == SessionRow.id))
    if task is not None:
        query = query.where(SessionRow.task == Task.parse(task).value)
    if owner_id is not None:
        query = query.where(SessionRow.owner_id == owner_id)
    return int(session.scalar(query) or 0)



def count_requests_by_task(session: Session) -> dict[str, int]:
    """Distinct requests per task ("t2i", "edit"): the prompts an RL run could train on."""
    rows = session.execute(select(SessionRow.task, func.count(distinct(CandidateRow.request)))
                           .join(SessionRow, CandidateRow.session_id == SessionRow.id)
                           .group_by(SessionRow.task)).all()
    return {str(task): int(count) for task, count in rows}

# --- review queues, leases and undo ----------------------------------------------------------

def critique_item(critique_id: int) -> str:
    """The lease key of a critique."""
    return f"critique:{int(critique_id)}"


def pair_item(candidate_a_id: int, candidate_b_id: int) -> str:
    """The lease key of an image pair (the same in either order)."""
    low, high = sorted((int(candidate_a_id), int(candidate_b_id)))
    return f"pair:{low}-{high}"


def _leased_by_others(item: Any, holder_id: str, now: datetime) -> Any:
    return (select(ReviewLease.item).where(ReviewLease.item == item, ReviewLease.holder_id != holder_id,
                                           ReviewLease.expires_at > now).exists())


def take_lease(session: Session, *, item: str, holder_id: str, now: datetime, until: datetime) -> bool:
    """Hand `item` to `holder_id` until `until`, unless another reviewer's lease on it still holds.
    One conditional UPDATE (or an INSERT when there is no row), so two workers racing for the same
    item cannot both win: False for the one that lost, and whenever someone else has it."""
    renewed = session.execute(
        update(ReviewLease).where(ReviewLease.item == item,
                                  or_(ReviewLease.holder_id == holder_id, ReviewLease.expires_at <= now))
        .values(holder_id=holder_id, expires_at=until).execution_options(synchronize_session=False))
    if renewed.rowcount:
        return True
    if session.get(ReviewLease, item) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(ReviewLease(item=item, holder_id=holder_id, expires_at=until))
            session.flush()
    except IntegrityError:
        return False
    return True


def release_leases(session: Session, holder_id: str, item: str | None = None, kind: str | None = None) -> None:
    """Give back `holder_id`'s lease on `item`, or on every item of `kind` ("critique", "pair"), or
    every lease they hold when both are None."""
    query = delete(ReviewLease).where(ReviewLease.holder_id == holder_id)
    if item is not None:
        query = query.where(ReviewLease.item == item)
    if kind is not None:
        query = query.where(ReviewLease.item.startswith(f"{kind}:", autoescape=True))
    session.execute(query)


def _reviewable(query: Any, user: User) -> Any:
    return query.where(SessionRow.owner_id == user.id) if user.role is Role.DESIGNER else query


def review_queue(session: Session, *, annotator_id: str, now: datetime, exclude: Sequence[int] = (),
                 limit: int = 20) -> list[CritiqueRow]:
    """Critiques for `annotator_id` to review: ones they have not annotated, not in `exclude` (their
    skips), not leased to another reviewer now; those with the fewest annotators first, then oldest."""
    user = get_user(session, annotator_id)
    judges = (select(Annotation.critique_id, func.count(distinct(Annotation.annotator_id)).label("n"))
              .group_by(Annotation.critique_id).subquery())
    mine = select(Annotation.critique_id).where(Annotation.annotator_id == annotator_id)
    item = literal("critique:").concat(cast(CritiqueRow.id, String))
    query = (select(CritiqueRow).join(CandidateRow, CritiqueRow.candidate_id == CandidateRow.id)
             .join(SessionRow, CandidateRow.session_id == SessionRow.id)
             .outerjoin(judges, judges.c.critique_id == CritiqueRow.id)
             .where(CritiqueRow.id.not_in(mine), ~_leased_by_others(item, annotator_id, now)))
    if exclude:
        query = query.where(CritiqueRow.id.not_in([int(i) for i in exclude]))
    query = _reviewable(query, user).order_by(func.coalesce(judges.c.n, 0), CritiqueRow.created_at, CritiqueRow.id)
    return list(session.scalars(query.limit(max(1, min(int(limit), MAX_PAGE)))))


def count_critiques_to_review(session: Session, annotator_id: str) -> int:
    """Critiques `annotator_id` may see and has not annotated (leases and skips aside)."""
    user = get_user(session, annotator_id)
    mine = select(Annotation.critique_id).where(Annotation.annotator_id == annotator_id)
    query = (select(func.count(CritiqueRow.id)).join(CandidateRow, CritiqueRow.candidate_id == CandidateRow.id)
             .join(SessionRow, CandidateRow.session_id == SessionRow.id).where(CritiqueRow.id.not_in(mine)))
    return int(session.scalar(_reviewable(query, user)) or 0)


def last_annotated_critique(session: Session, annotator_id: str) -> int | None:
    """The critique of `annotator_id`'s most recent submit, or None."""
    return session.scalar(select(Annotation.critique_id).where(Annotation.annotator_id == annotator_id)
                          .order_by(Annotation.created_at.desc(), Annotation.id.desc()).limit(1))


def my_annotations(session: Session, critique_id: int, annotator_id: str) -> list[Annotation]:
    """`annotator_id`'s verdicts on one critique (to show them again after Back)."""
    return list(session.scalars(select(Annotation).where(Annotation.critique_id == critique_id,
                                                         Annotation.annotator_id == annotator_id)))


def delete_annotations(session: Session, critique_id: int, annotator_id: str) -> int:
    """Remove `annotator_id`'s verdicts on one critique (undo); how many rows went."""
    result = session.execute(delete(Annotation).where(Annotation.critique_id == critique_id,
                                                      Annotation.annotator_id == annotator_id))
    return int(result.rowcount or 0)


def _pair_ends() -> tuple[Any, Any]:
    low = case((PairJudgement.candidate_a_id < PairJudgement.candidate_b_id, PairJudgement.candidate_a_id),
               else_=PairJudgement.candidate_b_id)
    high = case((PairJudgement.candidate_a_id < PairJudgement.candidate_b_id, PairJudgement.candidate_b_id),
                else_=PairJudgement.candidate_a_id)
    return low, high


def pair_queue(session: Session, *, judge_id: str, now: datetime, exclude: Sequence[str] = (),
               limit: int = 20) -> list[tuple[int, int]]:
    """Image pairs of one session for `judge_id` to compare, as (lower, higher) candidate ids: ones they
    have not judged in either order, not in `exclude` (pair_item keys they skipped), not leased to
    another reviewer now; those with the fewest human judgements first, then by session and ids."""
    user = get_user(session, judge_id)
    a, b = aliased(CandidateRow), aliased(CandidateRow)
    low, high = _pair_ends()
    counts = (select(low.label("low"), high.label("high"), func.count().label("n"))
              .where(PairJudgement.source == PairSource.HUMAN).group_by(low, high).subquery())
    judged = select(PairJudgement.id).where(
        PairJudgement.judge_id == judge_id,
        or_((PairJudgement.candidate_a_id == a.id) & (PairJudgement.candidate_b_id == b.id),
            (PairJudgement.candidate_a_id == b.id) & (PairJudgement.candidate_b_id == a.id)))
    item = literal("pair:").concat(cast(a.id, String)).concat(literal("-")).concat(cast(b.id, String))
    query = (select(a.id, b.id).join(b, (b.session_id == a.session_id) & (b.id > a.id))
             .join(SessionRow, a.session_id == SessionRow.id)
             .outerjoin(counts, (counts.c.low == a.id) & (counts.c.high == b.id))
             .where(~judged.exists(), ~_leased_by_others(item, judge_id, now)))
    if exclude:
        query = query.where(item.not_in(list(exclude)))
    query = _reviewable(query, user).order_by(func.coalesce(counts.c.n, 0), a.session_id, a.id, b.id)
    return [(int(x), int(y)) for x, y in session.execute(query.limit(max(1, min(int(limit), MAX_PAGE))))]


def count_pairs(session: Session, user_id: str) -> int:
    """Image pairs (two candidates of one session) `user_id` may compare."""
    user = get_user(session, user_id)
    a, b = aliased(CandidateRow), aliased(CandidateRow)
    query = (select(func.count()).select_from(a).join(b, (b.session_id == a.session_id) & (b.id > a.id))
             .join(SessionRow, a.session_id == SessionRow.id))
    return int(session.scalar(_reviewable(query, user)) or 0)


def count_judged_pairs(session: Session, judge_id: str | None = None) -> int:
    """Distinct image pairs with a human judgement (by `judge_id`, if given)."""
    low, high = _pair_ends()
    query = select(low, high).where(PairJudgement.source == PairSource.HUMAN).distinct()
    if judge_id is not None:
        query = query.where(PairJudgement.judge_id == judge_id)
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def last_pair_judgement(session: Session, judge_id: str) -> PairJudgement | None:
    """`judge_id`'s most recent pick, or None."""
    return session.scalar(select(PairJudgement).where(PairJudgement.judge_id == judge_id)
                          .order_by(PairJudgement.created_at.desc(), PairJudgement.id.desc()).limit(1))


def delete_pair_judgement(session: Session, row: PairJudgement) -> None:
    """Take a pick back (undo); flushed, so a lease taken next in the same transaction sees it gone."""
    session.delete(row)
    session.flush()


def human_pair_judgements(session: Session) -> list[PairJudgement]:
    """Every person's pick, oldest first (for agreement and position bias)."""
    return list(session.scalars(select(PairJudgement).where(PairJudgement.source == PairSource.HUMAN)
                                .order_by(PairJudgement.id)))


def all_annotations(session: Session) -> list[Annotation]:
    """Every verdict, oldest first (for agreement)."""
    return list(session.scalars(select(Annotation).order_by(Annotation.id)))


# --- garbage collection ------------------------------------------------------------------------

def referenced_image_hashes(session: Session) -> set[str]:
    """Every hash an images row names (rows are only written with a round, in its transaction)."""
    return set(session.scalars(select(Image.sha256)))


def unreferenced_image_rows(session: Session, older_than: datetime) -> list[str]:
    """Image rows no round uses (left behind by a crash or an older delete) created before `older_than`."""
    used = select(CandidateRow.image_sha256).union(
        select(CandidateRow.source_image_sha256).where(CandidateRow.source_image_sha256.is_not(None)))
    return list(session.scalars(select(Image.sha256).where(Image.sha256.not_in(used), Image.created_at < older_than)
                                .order_by(Image.sha256)))


def delete_image_rows(session: Session, hashes: Sequence[str]) -> int:
    """Delete these image rows (the garbage collector's pick from unreferenced_image_rows), checking
    again in the same statement that no round uses them."""
    if not hashes:
        return 0
    used = select(CandidateRow.image_sha256).union(
        select(CandidateRow.source_image_sha256).where(CandidateRow.source_image_sha256.is_not(None)))
    result = session.execute(delete(Image).where(Image.sha256.in_(list(hashes)), Image.sha256.not_in(used))
                             .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


def candidates_by_ids(session: Session, candidate_ids: Sequence[int]) -> dict[int, CandidateRow]:
    return {row.id: row for row in session.scalars(select(CandidateRow).where(CandidateRow.id.in_(list(candidate_ids))))}


# --- stored critic prompts ---------------------------------------------------------------------

def critiques_without_prompt(session: Session, after_id: int = 0, limit: int = MAX_PAGE) -> list[CritiqueRow]:
    """Critiques stored before their critic prompt was kept (revision 0003), oldest first, from ids
    above `after_id` (to page past rows that cannot be filled)."""
    return list(session.scalars(select(CritiqueRow)
                                .where(CritiqueRow.prompt_messages.is_(None), CritiqueRow.id > after_id)
                                .order_by(CritiqueRow.id).limit(max(1, int(limit)))))


def set_prompt_messages(session: Session, critique_id: int, messages: list[dict[str, str]]) -> None:
    """Fill in the critic prompt of an older critique (only where none is stored yet)."""
    row = session.get(CritiqueRow, critique_id)
    if row is None:
        raise NotFound(f"no critique {critique_id}")
    if row.prompt_messages is None:
        row.prompt_messages = [dict(m) for m in messages]
        session.flush()


# --- export download links ---------------------------------------------------------------------

def add_export_link(session: Session, *, token_hash: str, owner_id: str, file_name: str, fmt: str,
                    record_count: int) -> ExportLink:
    row = ExportLink(token_hash=token_hash, owner_id=owner_id, file_name=file_name, format=fmt,
                     record_count=int(record_count))
    session.add(row)
    session.flush()
    return row


def get_export_link(session: Session, token_hash: str) -> ExportLink | None:
    return session.get(ExportLink, token_hash)


def export_link_files(session: Session) -> dict[str, str]:
    """Every export link's token hash and the file name it serves."""
    return {token_hash: name for token_hash, name in session.execute(select(ExportLink.token_hash, ExportLink.file_name))}


def delete_export_links(session: Session, token_hashes: Sequence[str]) -> int:
    if not token_hashes:
        return 0
    return session.execute(delete(ExportLink).where(ExportLink.token_hash.in_(list(token_hashes)))).rowcount
