"""Running the loop for a user: start a run, continue a stored one, generate or critique once, retry a
critique, keep an image, stop. Every GPU job takes its turn through studio.scheduling (per-user limit
at submission, bounded queue, round-robin between users); a run shows its place while it waits.

Persistence: nothing is written until the first round is finished. Its transaction writes the session
row together with the round (all its candidates, images and critiques); every later round is one
write transaction of its own. So a run refused by a check, by a model that fails to load or by a
first round that produces nothing leaves no empty session behind, and a crash loses at most the
round in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from PIL import Image

from rr_core.critics.base import CritiqueRequest
from rr_core.errors import InvalidImage
from rr_core.generators.base import GenerationRequest
from rr_core.images import load_image, read_image_ref
from rr_core.loop import (
    Candidate,
    CritiqueParsed,
    CritiqueToken,
    ErrorEvent,
    ImageReady,
    LoopConfig,
    LoopDone,
    RoundDone,
    RoundResult,
    RoundStarted,
)
from rr_core.prompts import validate_request
from rr_core.reward import apply_reward
from rr_core.rubric import Task
from storage import repository as repo
from storage.db import write_transaction
from storage.models import new_session_id
from studio import codec
from studio.context import AppContext
from studio.run_model import Run
from studio.scheduling import FairScheduler, RunLimitExceeded, Ticket  # noqa: F401  (RunLimitExceeded: re-exported)
from studio.settings import run_settings
from rr_core.loop import decide_round
from studio.views import RunView

APP_LOOP_DEFAULTS: dict[str, Any] = {"max_retries": 0, "on_critique_error": "skip"}
"""A failed critique is shown with its raw text and a retry button rather than retried silently."""

STOP_MESSAGES = {"threshold": "Done: every dimension reached the stop threshold.",
                 "max_rounds": "Done: all rounds ran.",
                 "no_improvement": "Done: no further improvement.",
                 "cancelled": "Stopped.",
                 "error": "Stopped after an error."}


@dataclass
class PendingSession:
    """The session row of a new run, written in the transaction of its first stored round."""

    task: Task
    prompt: str
    settings: dict[str, Any]
    written: bool = False


def loop_config(settings: dict[str, Any] | None) -> LoopConfig:
    """The loop configuration of a run from the UI's or API's settings (the app's defaults first)."""
    values = dict(APP_LOOP_DEFAULTS)
    values.update({k: v for k, v in run_settings(settings).items() if v is not None or k == "stop_threshold"})
    return LoopConfig.from_dict(values)


def check_run(prompt: str, settings: dict[str, Any] | None = None) -> tuple[str, LoopConfig]:
    """Every check a run makes on its request and settings, callable before the run starts so that
    a front end can refuse bad input without touching what it shows; returns the stripped request
    and the loop configuration. The first round's generation request is built here too, so the
    seed and step limits of rr_core.generators (their one home) are checked before any output moves."""
    prompt, config = validate_request(prompt), loop_config(settings)
    GenerationRequest(prompt=prompt, negative_prompt=config.negative_prompt, seed=config.seed, steps=config.steps,
                      guidance=config.guidance, width=config.width, height=config.height,
                      num_candidates=config.candidates)
    return prompt, config


def _queued(view: RunView, ticket: Ticket) -> Iterator[RunView]:
    """The view while the run waits for its turn on the GPU, with the number of jobs ahead."""
    for ahead in ticket.waiting():
        view.status = f"Queued: {ahead} job(s) ahead of you…"
        yield view


def _image_input(payload: Any, what: str) -> Image.Image | None:
    if isinstance(payload, Image.Image):
        return load_image(payload)
    return read_image_ref(payload, what)


class Runs:
    """Starts and continues runs of the loop and stores each finished round."""

    def __init__(self, ctx: AppContext, max_runs_per_user: int = 2, max_queued: int = 16,
                 remote_critic: bool = False, gpu_workers: int = 1) -> None:
        self.ctx = ctx
        self.slots = FairScheduler(max_runs_per_user, max_queued, gpu_workers)
        self.remote_critic = remote_critic

    @contextmanager
    def _critic_turn(self, user_id: str) -> Iterator[None]:
        """A critique alone takes a GPU turn, unless the critic is a remote server (not limited)."""
        if self.remote_critic:
            yield
            return
        with self.slots.slot(user_id) as ticket:
            ticket.wait()
            yield

    def stop(self, username: str | None) -> str:
        """Ask every run of this user to stop after its current step."""
        count = self.slots.cancel_all(self.ctx.users.user(username))
        return f"Stopping {count} run(s) after the current step." if count else "Nothing is running."

    def run_loop(self, username: str | None, prompt: str, settings: dict[str, Any] | None = None,
                 source_image: Any = None) -> Iterator[RunView]:
        """Start a session and run the loop; yields the view after every event. Edit when a source
        image is given (a PIL image, or a data URL / base64 through rr_core.images.read_image_ref)."""
        user_id = self.ctx.users.user(username)
        prompt, config = check_run(prompt, settings)
        source = _image_input(source_image, "source image")
        task = Task.EDIT if source is not None else Task.T2I
        loop = self.ctx.models.loop(task)
        with self.slots.slot(user_id) as ticket:
            view = RunView(Run.new(new_session_id(), task, prompt, source), settings=config.to_dict())
            pending = PendingSession(task, prompt, config.to_dict())
            yield from _queued(view, ticket)
            yield from self._drive(user_id, view, prompt, config, ticket.cancel, loop, pending)

    def continue_session(self, username: str | None, session_id: str, prompt: str | None = None,
                         rounds: int = 1) -> Iterator[RunView]:
        """Run more rounds of a stored session, starting from `prompt` (the edited refined prompt) or
        the last round's proposal."""
        user_id = self.ctx.users.user(username)
        with self.ctx.db() as db:
            row = repo.get_session_for_user(db, session_id, user_id, write=True)
            run = codec.read_run(db, self.ctx.store, row, user_id)
            settings = dict(row.settings)
        settings["rounds"] = rounds
        config = LoopConfig.from_dict(settings)
        prompt = validate_request(prompt) if prompt and prompt.strip() else run.next_prompt
        loop = self.ctx.models.loop(run.task)
        with self.slots.slot(user_id) as ticket:
            view = RunView(run)
            yield from _queued(view, ticket)
            yield from self._drive(user_id, view, prompt, config, ticket.cancel, loop)

    def _drive(self, user_id: str, view: RunView, prompt: str, config: LoopConfig,
               cancel: threading.Event, loop: Any, pending: PendingSession | None = None) -> Iterator[RunView]:
        view.run.done, view.run.stop_reason = False, None
        view.status = "Starting…"
        yield view
        run = view.run
        for event in loop.run(prompt, config, source_image=run.source_image, cancel=cancel, state=run.state):
            self._apply(event, view, user_id, config, pending)
            yield view

    def _apply(self, event: Any, view: RunView, user_id: str, config: LoopConfig,
               pending: PendingSession | None = None) -> None:
        run = view.run
        if isinstance(event, RoundStarted):
            run.start_round(event.round_index, event.prompt)
            view.live_text = ""
            view.status = f"Round {event.round_index + 1}: generating…"
        elif isinstance(event, ImageReady):
            run.add_image(event.candidate_index, event.seed, event.image)
            view.status = f"Round {event.round_index + 1}: critiquing…"
        elif isinstance(event, CritiqueToken):
            view.live_text += event.text
        elif isinstance(event, CritiqueParsed):
            run.set_critique(event.candidate_index, event.critique)
            if not view.live_text:
                view.live_text = event.critique.raw_text
        elif isinstance(event, ErrorEvent):
            action = {"retry": "retrying", "skip": "skipped", "stop": "stopped"}[event.action]
            view.messages.append(f"Round {event.round_index + 1}: {event.stage} failed ({event.message}); {action}.")
        elif isinstance(event, RoundDone):
            run.finish_round(event.result)
            view.status = self._store_round(run, event.result, user_id, config, pending)
        elif isinstance(event, LoopDone):
            run.finish(event.result)
            view.status = STOP_MESSAGES.get(event.result.stop_reason, "Done.")

    def _store_round(self, run: Run, result: RoundResult, user_id: str, config: LoopConfig,
                     pending: PendingSession | None = None) -> str:
        """One write transaction for the whole round (with the session row when `pending` has not
        been written yet); returns the status line."""
        if not result.candidates:
            if pending is None or pending.written:
                with write_transaction(self.ctx.db) as db:
                    repo.note_skipped_round(db, run.session_id, result.index)
            return f"Round {result.index + 1} produced no image."
        # The generator's id (a LoRA's content hash included) is worked out before the write lock is taken.
        run.generator_id = self.ctx.models.preset.describe()["generators"].get(run.task.value, "")
        with write_transaction(self.ctx.db) as db:
            if pending is not None and not pending.written:
                repo.create_session(db, session_id=run.session_id, owner_id=user_id, task=pending.task,
                                    request=pending.prompt, settings=pending.settings)
            ids = codec.write_round(db, self.ctx.store, run, result, user_id, config)
        if pending is not None:
            pending.written = True
        run.candidate_ids.update(ids)
        return f"Round {result.index + 1} done."

    # --- single steps (API) ---

    def generate(self, username: str | None, prompt: str, settings: dict[str, Any] | None = None,
                 source_image: Any = None) -> RunView:
        """Generate one round's images without critiquing them; stored as a session of its own."""
        user_id = self.ctx.users.user(username)
        prompt = validate_request(prompt)
        source = _image_input(source_image, "source image")
        task = Task.EDIT if source is not None else Task.T2I
        config = loop_config({**(settings or {}), "rounds": 1})
        with self.slots.slot(user_id) as ticket:
            ticket.wait()
            images = self.ctx.models.generator(task).generate(GenerationRequest(
                prompt=prompt, negative_prompt=config.negative_prompt, seed=config.seed, steps=config.steps,
                guidance=config.guidance, width=config.width, height=config.height,
                num_candidates=config.candidates, source_image=source))
        candidates = [Candidate(i, config.seed + i, image) for i, image in enumerate(images)]
        return self._store_single(user_id, task, prompt, config, candidates, source)

    def critique(self, username: str | None, prompt: str, image: Any, source_image: Any = None) -> RunView:
        """Critique an uploaded image (and source, for an edit); stored as a one-round session."""
        user_id = self.ctx.users.user(username)
        prompt = validate_request(prompt)
        picture = _image_input(image, "image")
        if picture is None:
            raise InvalidImage("Upload the image to critique.")
        source = _image_input(source_image, "source image")
        task = Task.EDIT if source is not None else Task.T2I
        config = loop_config({"rounds": 1})
        with self._critic_turn(user_id):
            critique = self.ctx.models.critic().critique(CritiqueRequest(task, prompt, picture, source))
        critique = apply_reward(critique, config.reward)
        return self._store_single(user_id, task, prompt, config, [Candidate(0, 0, picture, critique)], source)

    def _store_single(self, user_id: str, task: Task, prompt: str, config: LoopConfig,
                      candidates: list[Candidate], source: Image.Image | None) -> RunView:
        run = Run.new(new_session_id(), task, prompt, source)
        pick, proposal = decide_round(candidates, prompt)
        result = RoundResult(0, prompt, candidates, pick, proposal, request=prompt)
        run.finish_round(result)
        view = RunView(run)
        view.status = self._store_round(run, result, user_id, config, PendingSession(task, prompt, config.to_dict()))
        run.done, run.stop_reason = True, "max_rounds"
        if candidates and candidates[0].critique is not None:
            view.live_text = candidates[0].critique.raw_text
        return view

    # --- one stored image ---

    def retry_critique(self, username: str | None, candidate_id: int) -> str:
        """Critique a stored image again (after a parse failure) and store the new critique; returns
        the session id (the caller reopens it)."""
        user_id = self.ctx.users.user(username)
        with self.ctx.db() as db:
            row = repo.get_candidate_for_user(db, int(candidate_id), user_id, write=True)
            session_id, task, prompt = row.session_id, Task.parse(row.session.task), row.request
            image = self.ctx.store.open(row.image_sha256)
            source = self.ctx.store.open(row.source_image_sha256) if row.source_image_sha256 else None
            config = LoopConfig.from_dict(dict(row.session.settings))
        with self._critic_turn(user_id):
            critique = self.ctx.models.critic().critique(CritiqueRequest(task, prompt, image, source))
        critique = apply_reward(critique, config.reward)
        with write_transaction(self.ctx.db) as db:
            repo.get_candidate_for_user(db, int(candidate_id), user_id, write=True)
            codec.add_critique(db, int(candidate_id), critique, config.reward, prompt, task, image, source)
        return session_id

    def candidate_image(self, username: str | None, candidate_id: int) -> Image.Image:
        """A stored round's image (to send it to Edit as a source)."""
        user_id = self.ctx.users.user(username)
        with self.ctx.db() as db:
            return self.ctx.store.open(repo.get_candidate_for_user(db, int(candidate_id), user_id).image_sha256)

    def keep(self, username: str | None, candidate_id: int) -> str:
        """Mark a stored image as the one the user keeps."""
        user_id = self.ctx.users.user(username)
        with write_transaction(self.ctx.db) as db:
            row = repo.set_chosen(db, candidate_id=int(candidate_id), user_id=user_id, chosen=True)
            return f"Kept round {row.round_index + 1}, image #{row.candidate_index + 1}."
