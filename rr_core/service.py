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

import base64
import binascii
import difflib
import hmac
import html
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from PIL import Image
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rr_core.critics.base import CritiqueRequest
from rr_core.critique import Critique, ParseStatus
from rr_core.errors import InvalidImage, InvalidRequest, RRError
from rr_core.images import data_url, load_image
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
from rr_core.rubric import Task, describe_score, dimensions
from rr_core.presets import cuda_available
from storage import repository as repo
from storage.db import database_url, make_session_factory, write_transaction
from storage.errors import SessionAccessDenied
from storage.export import FORMATS, export_to_file
from storage.images import ImageStore
from storage.models import PairJudgement, Role, Round, StudioSession

logger = logging.getLogger(__name__)

LOCAL_USER = "local"
MAX_NEGATIVE_CHARS = 2000
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


# --- users -------------------------------------------------------------------------------------

OAUTH_PREFIX = "hf:"


@dataclass
class AuthSettings:
    """Username/password pairs with roles (RR_AUTH="alice:pw:designer,bob:pw:annotator"), and/or
    Hugging Face OAuth on Spaces (users signed in that way get RR_OAUTH_ROLE, default designer;
    RR_ADMINS lists usernames that are admins)."""

    users: dict[str, tuple[str, Role]] = field(default_factory=dict)
    oauth: bool = False
    oauth_role: Role = Role.DESIGNER
    admins: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str, oauth: bool = False) -> AuthSettings:
        """Read "user:password[:role],..."; usernames cannot contain ":" (OAuth users are "hf:<name>")."""
        users = {}
        for entry in filter(None, (part.strip() for part in (text or "").split(","))):
            pieces = entry.split(":")
            if len(pieces) not in (2, 3) or not pieces[0] or not pieces[1]:
                raise ValueError(f"auth entry {entry.split(':')[0]!r} must be user:password[:role]")
            role = pieces[2] if len(pieces) == 3 else Role.DESIGNER.value
            try:
                users[pieces[0]] = (pieces[1], Role(role))
            except ValueError:
                raise ValueError(f"unknown role {role!r} for {pieces[0]!r}: designer, annotator or admin") from None
        return cls(users=users, oauth=oauth)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AuthSettings:
        env = dict(os.environ if env is None else env)
        settings = cls.parse(env.get("RR_AUTH", ""), oauth=env.get("RR_OAUTH", "") in ("1", "true", "yes"))
        settings.oauth_role = Role(env.get("RR_OAUTH_ROLE", Role.DESIGNER.value))
        settings.admins = frozenset(filter(None, env.get("RR_ADMINS", "").split(",")))
        return settings

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.oauth

    def check(self, username: str, password: str) -> bool:
        """Password check for gr.Blocks.launch(auth=...); constant-time comparison."""
        entry = self.users.get(username)
        return entry is not None and hmac.compare_digest(entry[0].encode(), str(password).encode())

    def role(self, username: str) -> Role:
        """The role of a signed-in user: "hf:<name>" for Hugging Face OAuth, else a password user."""
        if username.startswith(OAUTH_PREFIX):
            if not self.oauth:
                raise SessionAccessDenied("Hugging Face sign-in is not enabled on this server.")
            return Role.ADMIN if username[len(OAUTH_PREFIX):] in self.admins else self.oauth_role
        if username not in self.users:
            raise SessionAccessDenied(f"Unknown user {username!r}: sign in again.")
        return Role.ADMIN if username in self.admins else self.users[username][1]


# --- views: what the UI and the API show ------------------------------------------------------


@dataclass
class CandidateView:
    round_index: int
    candidate_index: int
    seed: int | None
    image: Image.Image
    critique: Critique | None = None
    round_id: int | None = None

    @property
    def reward(self) -> float | None:
        return self.critique.reward if self.critique is not None else None


@dataclass
class RoundView:
    index: int
    prompt: str
    candidates: list[CandidateView] = field(default_factory=list)
    pick: int | None = None
    proposal: str = ""
    done: bool = False

    @property
    def shown(self) -> CandidateView | None:
        """The candidate the UI details: the pick, else the last one critiqued, else the first."""
        if self.pick is not None and self.pick < len(self.candidates):
            return self.candidates[self.pick]
        critiqued = [c for c in self.candidates if c.critique is not None]
        return critiqued[-1] if critiqued else (self.candidates[0] if self.candidates else None)


@dataclass
class RunView:
    """A session as the UI shows it; updated in place while a run streams."""

    session_id: str
    task: str
    request: str
    source_image: Image.Image | None = None
    rounds: list[RoundView] = field(default_factory=list)
    live_text: str = ""
    status: str = ""
    messages: list[str] = field(default_factory=list)
    best: tuple[int, int] | None = None
    done: bool = False
    stop_reason: str | None = None

    @property
    def latest(self) -> CandidateView | None:
        for round_ in reversed(self.rounds):
            if round_.shown is not None:
                return round_.shown
        return None

    @property
    def best_candidate(self) -> CandidateView | None:
        if self.best is None:
            return None
        return self.rounds[self.best[0]].candidates[self.best[1]]

    @property
    def next_prompt(self) -> str:
        """The prompt a further round would use: the last finished round's proposal."""
        for round_ in reversed(self.rounds):
            if round_.done:
                return round_.proposal or round_.prompt
        return self.request

    @property
    def previous_prompt(self) -> str:
        for round_ in reversed(self.rounds):
            if round_.done:
                return round_.prompt
        return self.request

    @property
    def parse_failed(self) -> bool:
        latest = self.latest
        return latest is not None and latest.critique is not None and latest.critique.status is ParseStatus.FAILED

    def to_dict(self, images: bool = False) -> dict[str, Any]:
        """A JSON view for API clients; images as PNG data URLs when asked."""
        rounds = []
        for round_ in self.rounds:
            rounds.append({
                "round": round_.index, "prompt": round_.prompt, "pick": round_.pick, "proposal": round_.proposal,
                "done": round_.done,
                "candidates": [{
                    "candidate": c.candidate_index, "round_id": c.round_id, "seed": c.seed, "reward": c.reward,
                    "critique": critique_dict(c.critique),
                    **({"image": data_url(c.image)} if images else {}),
                } for c in round_.candidates],
            })
        return {"session_id": self.session_id, "task": self.task, "request": self.request, "status": self.status,
                "done": self.done, "stop_reason": self.stop_reason, "messages": list(self.messages),
                "best": None if self.best is None else {"round": self.best[0], "candidate": self.best[1]},
                "next_prompt": self.next_prompt, "live_text": self.live_text, "rounds": rounds}


def critique_dict(critique: Critique | None) -> dict[str, Any] | None:
    if critique is None:
        return None
    return {"status": critique.status.value, "reward": critique.reward, "summary": critique.summary,
            "refined_request": critique.refined_request, "raw_text": critique.raw_text, "error": critique.error,
            "scores": score_rows(critique)}


def score_rows(critique: Critique) -> list[dict[str, Any]]:
    """Per dimension: the score, its rubric level description and the justification."""
    rows = []
    for dim in dimensions(critique.task):
        entry = critique.scores.get(dim.key)
        score = entry.score if entry is not None else None
        na = bool(entry and entry.not_applicable)
        rows.append({"key": dim.key, "heading": dim.heading, "score": score, "not_applicable": na,
                     "description": describe_score(critique.task, dim.key, score, na),
                     "justification": entry.justification if entry is not None else ""})
    return rows


def scores_html(critique: Critique | None) -> str:
    """Score bars with the rubric level beside each number; a failed parse shows no score at all."""
    if critique is None:
        return "<div class='rr-scores rr-empty'>No critique yet.</div>"
    if critique.status is ParseStatus.FAILED:
        reason = html.escape(critique.error or "the critique did not follow the expected format")
        return (f"<div class='rr-scores rr-failed'><b>The critique could not be parsed</b> ({reason}). "
                "No score is shown; read the raw critique below or retry.</div>")
    parts = ["<div class='rr-scores'>"]
    for row in score_rows(critique):
        width = 0 if row["score"] is None else (row["score"] - 1.0) / 3.0 * 100
        parts.append(
            f"<div class='rr-score' data-key='{row['key']}'><div class='rr-score-head'>{html.escape(row['heading'])}</div>"
            f"<div class='rr-bar'><div class='rr-fill' style='width:{width:.0f}%'></div></div>"
            f"<div class='rr-level'>{html.escape(row['description'])}</div>"
            f"<div class='rr-why'>{html.escape(row['justification'])}</div></div>")
    reward = "—" if critique.reward is None else f"{critique.reward:.2f}"
    parts.append(f"<div class='rr-reward'>Reward: <b>{reward}</b> · parse: {critique.status.value}</div></div>")
    return "".join(parts)


def prompt_diff(old: str, new: str) -> list[tuple[str, str | None]]:
    """Word-level diff for gr.HighlightedText: ("word ", "+" | "-" | None)."""
    old_words, new_words = old.split(), new.split()
    out: list[tuple[str, str | None]] = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(a=old_words, b=new_words).get_opcodes():
        if op == "equal":
            out.append((" ".join(old_words[a0:a1]) + " ", None))
            continue
        if a1 > a0:
            out.append((" ".join(old_words[a0:a1]) + " ", "-"))
        if b1 > b0:
            out.append((" ".join(new_words[b0:b1]) + " ", "+"))
    return out


def history_rows(view: RunView) -> list[dict[str, Any]]:
    """Long-format rows (round, series, value) of each dimension's score and the reward per round.

    The reward is drawn on the scores' 1-4 axis as 1 + 3 * reward (the mean score it stands for),
    so one plot shows both without a second axis.
    """
    rows = []
    for round_ in view.rounds:
        shown = round_.shown
        if shown is None or shown.critique is None or shown.critique.status is ParseStatus.FAILED:
            continue
        for dim in dimensions(shown.critique.task):
            score = shown.critique.score(dim.key)
            if score is not None:
                rows.append({"round": round_.index + 1, "series": dim.heading, "value": score})
        if shown.reward is not None:
            rows.append({"round": round_.index + 1, "series": "reward (1 + 3r)", "value": 1.0 + 3.0 * shown.reward})
    return rows


def gallery_items(view: RunView) -> list[tuple[Image.Image, str]]:
    items = []
    for round_ in view.rounds:
        for c in round_.candidates:
            reward = "no score" if c.reward is None else f"reward {c.reward:.2f}"
            star = "★ best · " if view.best == (round_.index, c.candidate_index) else ""
            items.append((c.image, f"{star}round {round_.index + 1} · #{c.candidate_index + 1} · {reward}"))
    return items


def decode_image_payload(payload: str | bytes | Image.Image | None, what: str = "image") -> Image.Image | None:
    """An API image (a data URL or base64 PNG/JPEG/WebP), a file path the web layer already checked,
    or a PIL image, through load_image's checks."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return None
    if isinstance(payload, str) and (payload.startswith("data:") or len(payload) > 1024):
        text = payload.split(",", 1)[1] if payload.startswith("data:") else payload
        try:
            payload = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage(f"The {what} is not valid base64 image data.") from None
    elif isinstance(payload, str):
        raise InvalidImage(f"The {what} must be a data URL (data:image/png;base64,...) or base64 image bytes.")
    return load_image(payload)


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
        if len(values.get("negative_prompt", "")) > MAX_NEGATIVE_CHARS:
            raise InvalidRequest(f"The negative prompt is over {MAX_NEGATIVE_CHARS} characters; shorten it.")
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
                    db, store=self.store, session_id=view.session_id, owner_id=user_id, prompt=result.prompt,
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
        state = LoopState(task=Task.parse(row.task), source_image=source)
        by_index: dict[int, list[Round]] = {}
        for round_row in rounds:
            by_index.setdefault(round_row.round_index, []).append(round_row)
        for index in range(max(by_index) + 1 if by_index else 0):
            members = by_index.get(index, [])
            if not members:  # a round that produced no image: keep the numbering
                result = RoundResult(index, view.next_prompt, [], None, view.next_prompt, skipped=True)
                state.rounds.append(result)
                state.update_best(result)
                continue
            candidates, round_view = [], RoundView(index, members[0].prompt, done=True)
            for member in members:
                critique = repo.critique_from_row(member.critiques[-1]) if member.critiques else None
                image = self.store.open(member.image_sha256)
                candidates.append(Candidate(member.candidate_index, member.seed or 0, image, critique))
                round_view.candidates.append(CandidateView(index, member.candidate_index, member.seed, image,
                                                           critique, member.id))
            rewarded = [c for c in candidates if c.reward is not None]
            pick = max(rewarded, key=lambda c: c.reward).index if rewarded else None
            proposal = next((m.refined_prompt for m in ([members[pick]] if pick is not None else []) + members
                             if m.refined_prompt.strip()), members[0].prompt)
            result = RoundResult(index, members[0].prompt, candidates, pick, proposal)
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
                                    else float(score), comment=str(entry.get("comment", ""))[:2000])
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
                                    "prompt_a": row_a.prompt, "prompt_b": row_b.prompt,
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
