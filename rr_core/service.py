"""The studio's handlers: plain functions over the loop and storage that the Gradio app wires to its
components and API endpoints. No Gradio here, so every handler is testable with plain values.

Who acts is never a parameter a caller can choose: every handler takes the `username` the web layer
authenticated (gr.Request.username) and resolves it here. Without auth configured there is one local
user with the admin role; with auth, an anonymous call is refused. A designer sees and changes only
their own sessions; the Annotate and export views need the annotator or admin role. Storage checks
session ownership again on every id a caller passes in.

Persistence: a session row is written when a run starts, then every round (all its candidates, images
and critiques) in one write transaction when the round finishes, so a crash loses at most the round
in flight.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from PIL import Image
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rr_core.critics.base import CritiqueRequest
from rr_core.errors import InvalidImage, InvalidRequest, RRError
from rr_core.images import load_image
from rr_core.limits import MAX_COMMENT_CHARS, MAX_REQUEST_CHARS
from rr_core.loop import (
    Candidate,
    CritiqueParsed,
    CritiqueToken,
    ErrorEvent,
    ImageReady,
    LoopConfig,
    LoopDone,
    LoopState,
    RoundDone,
    RoundResult,
    RoundStarted,
)
from rr_core.prompts import validate_request
from rr_core.reward import apply_reward
from rr_core.rubric import Task
from rr_core.presets import cuda_available
from storage import repository as repo
from storage.db import database_url, make_session_factory, write_transaction
from storage.errors import SessionAccessDenied
from storage.export import FORMATS, export_to_file
from storage.images import ImageStore
from storage.models import PairJudgement, Role, Round, StudioSession
from rr_core.auth import AuthSettings
from rr_core.run_view import CandidateView, RoundView, RunView, decode_image_payload, score_rows

logger = logging.getLogger(__name__)

LOCAL_USER = "local"
APP_LOOP_DEFAULTS: dict[str, Any] = {"max_retries": 0, "on_critique_error": "skip"}
"""A failed critique is shown with its raw text and a retry button rather than retried silently."""


class RunLimitExceeded(RRError):
    """The user already has as many runs in flight as the server allows."""


class RoleRequired(SessionAccessDenied):
    """The view needs the annotator or admin role."""


class StudioLike(Protocol):
    preset: Any

    def loop(self, task: Task | str) -> Any: ...
    def critic(self) -> Any: ...
    def generator(self, task: Task | str) -> Any: ...


# --- the service -------------------------------------------------------------------------------


class StudioService:
    """Handlers for every view and API endpoint. One instance serves all users and sessions."""

    def __init__(self, studio: StudioLike, engine: Engine, store: ImageStore, *,
                 auth: AuthSettings | None = None, max_runs_per_user: int = 2,
                 exports_dir: str | os.PathLike[str] | None = None, database_url_text: str | None = None,
                 remote_critic: bool = False) -> None:
        self.studio = studio
        self.engine = engine
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self.store = store
        self.auth = auth or AuthSettings()
        self.max_runs_per_user = max_runs_per_user
        self.exports_dir = Path(exports_dir) if exports_dir else store.root.parent / "exports"
        self.database_url_text = database_url_text or str(engine.url)
        self.remote_critic = remote_critic
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._cancels: dict[str, set[threading.Event]] = {}
        self._known_users: dict[str, Role] = {}
        self._health = "ready"

    # --- identity and limits ---

    def user(self, username: str | None) -> str:
        """The acting user's id, created (or its role synced with the settings) on first sight."""
        if not self.auth.enabled:
            user_id, role, name = LOCAL_USER, Role.ADMIN, "Local user"
        else:
            if not username:
                raise SessionAccessDenied("Sign in to use the studio.")
            user_id, role, name = username, self.auth.role(username), username
        if self._known_users.get(user_id) is not role:
            with write_transaction(self.sessions) as db:
                row = repo.get_or_create_user(db, user_id, name, role)
                row.role = role
            self._known_users[user_id] = role
        return user_id

    def role(self, username: str | None) -> Role:
        user_id = self.user(username)
        return self._known_users[user_id]

    def _require_reviewer(self, username: str | None) -> str:
        user_id = self.user(username)
        if self._known_users[user_id] not in (Role.ANNOTATOR, Role.ADMIN):
            raise RoleRequired("This view needs the annotator or admin role.")
        return user_id

    @contextmanager
    def _run_slot(self, user_id: str) -> Iterator[threading.Event]:
        cancel = threading.Event()
        with self._lock:
            if self._in_flight.get(user_id, 0) >= self.max_runs_per_user:
                raise RunLimitExceeded(
                    f"You already have {self.max_runs_per_user} run(s) in progress; wait for one to finish "
                    "or press Stop.")
            self._in_flight[user_id] = self._in_flight.get(user_id, 0) + 1
            self._cancels.setdefault(user_id, set()).add(cancel)
        try:
            yield cancel
        finally:
            with self._lock:
                self._in_flight[user_id] -= 1
                self._cancels[user_id].discard(cancel)

    def stop(self, username: str | None) -> str:
        """Ask every run of this user to stop after its current step."""
        user_id = self.user(username)
        with self._lock:
            events = list(self._cancels.get(user_id, ()))
        for event in events:
            event.set()
        return f"Stopping {len(events)} run(s) after the current step." if events else "Nothing is running."

    # --- health ---

    def health(self) -> str:
        """A line for the UI: preset, models, and the tiny banner or a loading/failure note."""
        described = self.studio.preset.describe()
        models = ", ".join(f"{task}: {model}" for task, model in described["generators"].items())
        text = f"Preset **{described['preset']}** · critic: {', '.join(sorted(set(map(str, described['critic'].values()))))} · generators: {models}"
        if self._health != "ready":
            text = f"{self._health}\n\n{text}"
        if described.get("banner"):
            text = f"{text}\n\n⚠️ {described['banner']}"
        return text

    def warm_up(self) -> None:
        """Load the models now (in a background thread at start) so the first run is not slow."""
        self._health = "⏳ Models are loading…"
        try:
            router = self.studio.critic()
            for task in Task:
                self.studio.generator(task)
            if cuda_available():
                # Compile and capture the critic's decode step now rather than on a user's first run.
                self._health = "⏳ Compiling the critic's fast decode path (first start only)…"
                for critic in {id(c): c for c in router.critics.values()}.values():
                    if hasattr(critic, "warmup"):
                        critic.warmup()
            self._health = "ready"
        except Exception as exc:  # shown in the UI; runs retry the load
            logger.exception("model warm-up failed")
            self._health = f"❌ Models failed to load: {type(exc).__name__}: {exc}"

    # --- runs ---

    def run_loop(self, username: str | None, prompt: str, settings: dict[str, Any] | None = None,
                 source_image: Any = None) -> Iterator[RunView]:
        """Start a session and run the loop; yields the view after every event. Edit when a source
        image is given (a PIL image, or a data URL through decode_image_payload)."""
        user_id = self.user(username)
        prompt = validate_request(prompt)
        source = source_image if isinstance(source_image, Image.Image) or source_image is None \
            else decode_image_payload(source_image, "source image")
        if isinstance(source, Image.Image):
            source = load_image(source)
        task = Task.EDIT if source is not None else Task.T2I
        config = self.loop_config(settings)
        with self._run_slot(user_id) as cancel:
            with write_transaction(self.sessions) as db:
                session_id = repo.create_session(db, owner_id=user_id, task=task, prompt=prompt,
                                                 settings=config.to_dict()).id
            view = RunView(session_id=session_id, task=task.value, request=prompt, source_image=source)
            state = LoopState(task=task, source_image=source)
            yield from self._drive(user_id, view, state, prompt, config, cancel)

    def continue_session(self, username: str | None, session_id: str, prompt: str | None = None,
                         rounds: int = 1) -> Iterator[RunView]:
        """Run more rounds of a stored session, starting from `prompt` (the edited refined prompt) or
        the last round's proposal."""
        user_id = self.user(username)
        with self.sessions() as db:
            row = repo.get_session_for_user(db, session_id, user_id, write=True)
            view, state = self._load(db, row, user_id)
            settings = dict(row.settings)
        settings["rounds"] = rounds
        config = LoopConfig.from_dict(settings)
        prompt = validate_request(prompt) if prompt and prompt.strip() else view.next_prompt
        with self._run_slot(user_id) as cancel:
            yield from self._drive(user_id, view, state, prompt, config, cancel)

    def loop_config(self, settings: dict[str, Any] | None) -> LoopConfig:
        values = dict(APP_LOOP_DEFAULTS)
        values.update({k: v for k, v in (settings or {}).items() if v is not None or k == "stop_threshold"})
        for key in ("rounds", "candidates", "seed", "steps"):
            if values.get(key) is not None:
                values[key] = int(values[key])
        if len(values.get("negative_prompt", "")) > MAX_REQUEST_CHARS:
            raise InvalidRequest(f"The negative prompt is over {MAX_REQUEST_CHARS} characters; shorten it.")
        return LoopConfig.from_dict(values)

    def _drive(self, user_id: str, view: RunView, state: LoopState, prompt: str, config: LoopConfig,
               cancel: threading.Event) -> Iterator[RunView]:
        view.done, view.stop_reason = False, None
        view.status = "Starting…"
        yield view
        loop = self.studio.loop(view.task)
        for event in loop.run(prompt, config, source_image=state.source_image, cancel=cancel, state=state):
            self._apply(event, view, user_id, config)
            yield view

    def _apply(self, event: Any, view: RunView, user_id: str, config: LoopConfig) -> None:
        if isinstance(event, RoundStarted):
            view.rounds.append(RoundView(event.round_index, event.prompt))
            view.live_text = ""
            view.status = f"Round {event.round_index + 1}: generating…"
        elif isinstance(event, ImageReady):
            view.rounds[-1].candidates.append(CandidateView(event.round_index, event.candidate_index, event.seed,
                                                            event.image))
            view.status = f"Round {event.round_index + 1}: critiquing…"
        elif isinstance(event, CritiqueToken):
            view.live_text += event.text
        elif isinstance(event, CritiqueParsed):
            round_ = view.rounds[-1]
            round_.candidates[event.candidate_index].critique = event.critique
            if not view.live_text:
                view.live_text = event.critique.raw_text
        elif isinstance(event, ErrorEvent):
            view.messages.append(f"Round {event.round_index + 1}: {event.stage} failed ({event.message}); "
                                 f"{ {'retry': 'retrying', 'skip': 'skipped', 'stop': 'stopped'}[event.action] }.")
        elif isinstance(event, RoundDone):
            self._persist_round(event.result, view, user_id, config)
        elif isinstance(event, LoopDone):
            result = event.result
            view.best = None if result.best_round is None else (result.best_round, result.best_candidate)
            view.done, view.stop_reason = True, result.stop_reason
            view.status = {"threshold": "Done: every dimension reached the stop threshold.",
                           "max_rounds": "Done: all rounds ran.",
                           "no_improvement": "Done: no further improvement.",
                           "cancelled": "Stopped.",
                           "error": "Stopped after an error."}.get(result.stop_reason, "Done.")

    def _persist_round(self, result: RoundResult, view: RunView, user_id: str, config: LoopConfig) -> None:
        """One write transaction for the whole round: every candidate's image, round row and critique."""
        round_view = view.rounds[-1] if view.rounds and view.rounds[-1].index == result.index else None
        if round_view is None:
            round_view = RoundView(result.index, result.prompt)
            view.rounds.append(round_view)
        round_view.pick, round_view.proposal, round_view.done = result.pick, result.proposal, True
        if not result.candidates:
            view.status = f"Round {result.index + 1} produced no image."
            return
        generator_settings = {"steps": config.steps, "guidance": config.guidance, "width": config.width,
                              "height": config.height, "negative_prompt": config.negative_prompt}
        with write_transaction(self.sessions) as db:
            for candidate in result.candidates:
                row = repo.record_round(
                    db, store=self.store, session_id=view.session_id, owner_id=user_id,
                    prompt=result.request or result.prompt, used_prompt=result.prompt,
                    image=candidate.image, critique=candidate.critique, round_index=result.index,
                    candidate_index=candidate.index, seed=candidate.seed, generator_settings=generator_settings,
                    source_image=view.source_image)
                round_view.candidates[candidate.index].round_id = row.id
        view.status = f"Round {result.index + 1} done."

    def _load(self, db: Session, row: StudioSession, user_id: str) -> tuple[RunView, LoopState]:
        """Rebuild the view and the loop state of a stored session (the newest critique of each image)."""
        rounds = repo.session_rounds(db, row.id, user_id)
        source = self.store.open(rounds[0].source_image_sha256) if rounds and rounds[0].source_image_sha256 else None
        view = RunView(session_id=row.id, task=row.task, request=row.prompt, source_image=source, done=True)
        state = LoopState(task=Task.parse(row.task), source_image=source, request=row.prompt)
        by_index: dict[int, list[Round]] = {}
        for round_row in rounds:
            by_index.setdefault(round_row.round_index, []).append(round_row)
        for index in range(max(by_index) + 1 if by_index else 0):
            members = by_index.get(index, [])
            if not members:  # a round that produced no image: keep the numbering
                result = RoundResult(index, view.next_prompt, [], None, view.next_prompt, skipped=True,
                                     request=row.prompt)
                state.rounds.append(result)
                state.update_best(result)
                continue
            candidates, round_view = [], RoundView(index, members[0].used_prompt, done=True)
            for member in members:
                critique = repo.critique_from_row(member.critiques[-1]) if member.critiques else None
                image = self.store.open(member.image_sha256)
                candidates.append(Candidate(member.candidate_index, member.seed or 0, image, critique))
                round_view.candidates.append(CandidateView(index, member.candidate_index, member.seed, image,
                                                           critique, member.id))
            rewarded = [c for c in candidates if c.reward is not None]
            pick = max(rewarded, key=lambda c: c.reward).index if rewarded else None
            proposal = next((m.refined_prompt for m in ([members[pick]] if pick is not None else []) + members
                             if m.refined_prompt.strip()), members[0].used_prompt)
            result = RoundResult(index, members[0].used_prompt, candidates, pick, proposal,
                                 request=members[0].prompt)
            round_view.pick, round_view.proposal = pick, proposal
            view.rounds.append(round_view)
            state.rounds.append(result)
            state.update_best(result)
        if state.best_round is not None:
            view.best = (state.best_round, state.best_candidate)
        view.status = f"Session with {len(rounds)} image(s)."
        return view, state

    def open_session(self, username: str | None, session_id: str) -> RunView:
        user_id = self.user(username)
        with self.sessions() as db:
            row = repo.get_session_for_user(db, session_id, user_id)
            return self._load(db, row, user_id)[0]

    def retry_critique(self, username: str | None, round_id: int) -> RunView:
        """Critique a stored image again (after a parse failure) and store the new critique."""
        user_id = self.user(username)
        with self.sessions() as db:
            row = repo.get_round_for_user(db, int(round_id), user_id, write=True)
            session_id, task, prompt = row.session_id, Task.parse(row.session.task), row.prompt
            image = self.store.open(row.image_sha256)
            source = self.store.open(row.source_image_sha256) if row.source_image_sha256 else None
            config = LoopConfig.from_dict(dict(row.session.settings))
        critique = apply_reward(self.studio.critic().critique(CritiqueRequest(task, prompt, image, source)),
                                config.reward)
        with write_transaction(self.sessions) as db:
            repo.get_round_for_user(db, int(round_id), user_id, write=True)
            repo.add_critique(db, round_id=int(round_id), critique=critique)
        return self.open_session(username, session_id)

    def round_image(self, username: str | None, round_id: int) -> Image.Image:
        """A stored round's image (to send it to Edit as a source)."""
        user_id = self.user(username)
        with self.sessions() as db:
            return self.store.open(repo.get_round_for_user(db, int(round_id), user_id).image_sha256)

    def keep(self, username: str | None, round_id: int) -> str:
        user_id = self.user(username)
        with write_transaction(self.sessions) as db:
            row = repo.set_chosen(db, round_id=int(round_id), user_id=user_id, chosen=True)
            return f"Kept round {row.round_index + 1}, image #{row.candidate_index + 1}."

    # --- single steps (API) ---

    def generate(self, username: str | None, prompt: str, settings: dict[str, Any] | None = None,
                 source_image: Any = None) -> RunView:
        """Generate one round's images without critiquing them; stored as a session of its own."""
        user_id = self.user(username)
        prompt = validate_request(prompt)
        source = decode_image_payload(source_image, "source image") if not isinstance(source_image, Image.Image) \
            else load_image(source_image)
        task = Task.EDIT if source is not None else Task.T2I
        config = self.loop_config({**(settings or {}), "rounds": 1})
        from rr_core.generators.base import GenerationRequest

        with self._run_slot(user_id):
            images = self.studio.generator(task).generate(GenerationRequest(
                prompt=prompt, negative_prompt=config.negative_prompt, seed=config.seed, steps=config.steps,
                guidance=config.guidance, width=config.width, height=config.height,
                num_candidates=config.candidates, source_image=source))
        candidates = [Candidate(i, config.seed + i, image) for i, image in enumerate(images)]
        return self._store_single(user_id, task, prompt, config, candidates, source)

    def critique(self, username: str | None, prompt: str, image: Any, source_image: Any = None) -> RunView:
        """Critique an uploaded image (and source, for an edit); stored as a one-round session."""
        user_id = self.user(username)
        prompt = validate_request(prompt)
        picture = decode_image_payload(image) if not isinstance(image, Image.Image) else load_image(image)
        if picture is None:
            raise InvalidImage("Upload the image to critique.")
        source = decode_image_payload(source_image, "source image") if not isinstance(source_image, Image.Image) \
            else load_image(source_image)
        task = Task.EDIT if source is not None else Task.T2I
        config = self.loop_config({"rounds": 1})
        with self._run_slot(user_id):
            critique = self.studio.critic().critique(CritiqueRequest(task, prompt, picture, source))
        critique = apply_reward(critique, config.reward)
        return self._store_single(user_id, task, prompt, config, [Candidate(0, 0, picture, critique)], source)

    def _store_single(self, user_id: str, task: Task, prompt: str, config: LoopConfig,
                      candidates: list[Candidate], source: Image.Image | None) -> RunView:
        with write_transaction(self.sessions) as db:
            session_id = repo.create_session(db, owner_id=user_id, task=task, prompt=prompt,
                                             settings=config.to_dict()).id
        view = RunView(session_id=session_id, task=task.value, request=prompt, source_image=source)
        rewarded = [c for c in candidates if c.reward is not None]
        pick = max(rewarded, key=lambda c: c.reward).index if rewarded else None
        view.rounds.append(RoundView(0, prompt, [CandidateView(0, c.index, c.seed, c.image, c.critique)
                                                 for c in candidates]))
        proposal = next((c.critique.refined_request for c in candidates
                         if c.critique is not None and c.critique.refined_request.strip()), prompt)
        self._persist_round(RoundResult(0, prompt, candidates, pick, proposal), view, user_id, config)
        view.best = None if pick is None else (0, pick)
        view.done, view.stop_reason = True, "max_rounds"
        if candidates and candidates[0].critique is not None:
            view.live_text = candidates[0].critique.raw_text
        return view

    # --- sessions ---

    def list_sessions(self, username: str | None, search: str = "", limit: int = 50) -> list[dict[str, Any]]:
        """The caller's own sessions, newest first."""
        user_id = self.user(username)
        with self.sessions() as db:
            rows = repo.list_sessions(db, user_id, search=(search or "").strip()[:200] or None, limit=limit)
            counts = dict(db.execute(select(Round.session_id, func.count(func.distinct(Round.round_index)))
                                     .where(Round.session_id.in_([r.id for r in rows]))
                                     .group_by(Round.session_id)).all())
            return [{"id": r.id, "title": r.title, "task": r.task, "rounds": int(counts.get(r.id, 0)),
                     "created": r.created_at.strftime("%Y-%m-%d %H:%M")} for r in rows]

    def delete_session(self, username: str | None, session_id: str) -> str:
        user_id = self.user(username)
        with write_transaction(self.sessions) as db:
            repo.delete_session(db, session_id, user_id)
        return "Session deleted."

    def stats(self, username: str | None) -> dict[str, int]:
        user_id = self.user(username)
        with self.sessions() as db:
            return {"preference_pairs": repo.count_preference_pairs(db),
                    "annotated_critiques": repo.count_annotated_critiques(db),
                    "my_annotated_critiques": repo.count_annotated_critiques(db, annotator_id=user_id),
                    "my_sessions": len(repo.list_sessions(db, user_id, limit=repo.MAX_PAGE))}

    # --- annotation ---

    def next_critique(self, username: str | None) -> dict[str, Any] | None:
        """The next critique this annotator has not reviewed, with its images, or None."""
        user_id = self._require_reviewer(username)
        with self.sessions() as db:
            queue = repo.annotation_queue(db, annotator_id=user_id, limit=repo.MAX_PAGE)
            done = repo.count_annotated_critiques(db, annotator_id=user_id)
            if not queue:
                return None
            row = queue[0]
            round_ = row.round
            critique = repo.critique_from_row(row)
            return {"critique_id": row.id, "round_id": round_.id, "session_id": round_.session_id,
                    "task": round_.session.task, "request": round_.prompt, "status": row.status,
                    "summary": critique.summary, "raw_text": row.raw_text, "scores": score_rows(critique),
                    "image": self.store.open(round_.image_sha256),
                    "source_image": self.store.open(round_.source_image_sha256) if round_.source_image_sha256 else None,
                    "progress": {"done": done, "remaining": len(queue)}}

    def annotate(self, username: str | None, critique_id: int, verdicts: dict[str, dict[str, Any]]) -> str:
        """Store the annotator's verdict per dimension: {"key": {"verdict": accept|reject|correct,
        "score": float (for correct), "comment": str}}; all in one transaction."""
        user_id = self._require_reviewer(username)
        if not verdicts:
            raise InvalidRequest("Give a verdict for at least one dimension.")
        with write_transaction(self.sessions) as db:
            for key, entry in verdicts.items():
                verdict = str(entry.get("verdict", "")).lower()
                score = entry.get("score")
                repo.add_annotation(db, critique_id=int(critique_id), annotator_id=user_id, dimension=key,
                                    verdict=verdict, corrected_score=None if score in (None, "") or verdict != "correct"
                                    else float(score), comment=str(entry.get("comment", ""))[:MAX_COMMENT_CHARS])
        return f"Saved {len(verdicts)} verdict(s) on critique {critique_id}."

    def next_pair(self, username: str | None) -> dict[str, Any] | None:
        """Two images of the same request this user has not compared yet (the earliest such pair)."""
        user_id = self._require_reviewer(username)
        with self.sessions() as db:
            judged = {(min(a, b), max(a, b)) for a, b in db.execute(
                select(PairJudgement.round_a_id, PairJudgement.round_b_id).where(PairJudgement.judge_id == user_id))}
            rows = db.execute(select(Round.id, Round.session_id).order_by(Round.session_id, Round.id)).all()
            by_session: dict[str, list[int]] = {}
            for round_id, session_id in rows:
                by_session.setdefault(session_id, []).append(round_id)
            for ids in by_session.values():
                for i, a in enumerate(ids):
                    for b in ids[i + 1:]:
                        if (a, b) not in judged:
                            row_a = repo.get_round_for_user(db, a, user_id)
                            row_b = repo.get_round_for_user(db, b, user_id)
                            return {"round_a": a, "round_b": b, "request": row_a.session.prompt,
                                    "prompt_a": row_a.used_prompt, "prompt_b": row_b.used_prompt,
                                    "image_a": self.store.open(row_a.image_sha256),
                                    "image_b": self.store.open(row_b.image_sha256)}
        return None

    def pick_pair(self, username: str | None, round_a: int, round_b: int, preference: str) -> str:
        user_id = self._require_reviewer(username)
        if preference not in ("A", "B", "tie"):
            raise InvalidRequest(f"Pick A, B or tie, not {preference!r}.")
        with write_transaction(self.sessions) as db:
            repo.add_pair_judgement(db, round_a_id=int(round_a), round_b_id=int(round_b), preference=preference,
                                    judge_id=user_id)
        return f"Recorded {preference} for rounds {round_a} vs {round_b}."

    # --- export ---

    def export(self, username: str | None, fmt: str, parquet: bool = False) -> dict[str, Any]:
        """Write one training format from storage; returns the file, the record count and the command
        line that does the same for larger data."""
        self._require_reviewer(username)
        if fmt not in FORMATS:
            raise InvalidRequest(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        out = self.exports_dir / f"{fmt}-{stamp}.{'parquet' if parquet else 'jsonl'}"
        with self.sessions() as db:
            count = export_to_file(db, self.store, fmt, out, parquet=parquet)
        command = f"python -m storage.export --format {fmt} --out {out.name}"
        if self.database_url_text != database_url():
            shown = make_url(self.database_url_text).render_as_string(hide_password=True)
            command += f" --database-url '{shown}'"
        command += f" --images-dir {self.store.root}"
        return {"file": str(out), "count": count, "command": command}



def create_service(preset: str = "auto", *, database_url_text: str | None = None, critic_url: str | None = None,
                   low_memory: bool = False, auth: AuthSettings | None = None,
                   max_runs_per_user: int = 2) -> StudioService:
    """The service `python app.py` runs: resolve the preset, upgrade the database, open the store."""
    from rr_core.paths import data_dir
    from rr_core.presets import Studio, resolve_preset
    from storage.db import make_engine
    from storage.migrate import upgrade_to_head

    url = database_url_text or database_url()
    engine = make_engine(url)
    upgrade_to_head(engine)
    resolved = resolve_preset(preset, critic_url=critic_url, low_memory=low_memory)
    store = ImageStore(data_dir() / "images")
    return StudioService(Studio(resolved), engine, store, auth=auth or AuthSettings.from_env(),
                         max_runs_per_user=max_runs_per_user, exports_dir=data_dir() / "exports",
                         database_url_text=url, remote_critic=resolved.critic_kind == "openai")
