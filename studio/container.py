"""Wires the application layer's jobs together and gives the web layer one object to call.

`Services` holds one instance of each job (users, runs, sessions, review, exports, health) over one
shared context, and exposes the methods app.py calls, each a one-line hand-off to the job that does
it. `create_services` builds it the way `python app.py` runs: resolve the preset, upgrade the
database, open the image store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.db import database_url, make_session_factory
from storage.images import ImageStore
from storage.models import Role
from studio import settings as checked
from studio.context import AppContext, ModelsLike
from studio.exports import Exports
from studio.health import Health
from studio.review import Review
from studio.runs import Runs
from studio.sessions import SessionLibrary
from studio.training import Training, TrainingOverview
from studio.users import AuthSettings, Users
from studio.views import RunView


class Services:
    """Every handler the views and API endpoints call. One instance serves all users and sessions.

    Who acts is never a parameter a caller can choose: every method takes the `username` the web
    layer authenticated (gr.Request.username). Without auth configured there is one local admin; with
    auth, an anonymous call is refused. A designer sees and changes only their own sessions; review
    and export need the annotator or admin role; storage checks ownership again on every id.
    """

    def __init__(self, models: ModelsLike, engine: Engine, store: ImageStore, *,
                 auth: AuthSettings | None = None, max_runs_per_user: int = 2, max_queued: int = 16,
                 gpu_workers: int = 1, exports_dir: str | os.PathLike[str] | None = None, database_url_text: str | None = None,
                 remote_critic: bool = False) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self.store = store
        self.auth = auth or AuthSettings()
        self.remote_critic = remote_critic
        self.users = Users(self.sessions, self.auth)
        ctx = AppContext(models=models, db=self.sessions, store=store, users=self.users)
        self.runs = Runs(ctx, max_runs_per_user, max_queued, remote_critic, gpu_workers)
        self.library = SessionLibrary(ctx)
        self.review = Review(ctx)
        self.exports = Exports(ctx, Path(exports_dir) if exports_dir else store.root.parent / "exports",
                               database_url_text or str(engine.url))
        self.health_check = Health(models)
        self.training = Training(ctx, database_url_text or str(engine.url), store.root.parent)

    @property
    def gpu_admission(self) -> int:
        """GPU events the web layer lets through at once: twice what the scheduler queues, so a job
        beyond the queue reaches the scheduler and is refused as busy at once, instead of waiting
        unseen in Gradio's queue."""
        return 2 * self.runs.slots.capacity

    @property
    def exports_dir(self) -> Path:
        return self.exports.exports_dir

    # --- identity ---

    def user(self, username: str | None) -> str:
        return self.users.user(username)

    def role(self, username: str | None) -> Role:
        return self.users.role(username)

    # --- health ---

    def health(self) -> str:
        return self.health_check.health()

    def warm_up(self) -> None:
        self.health_check.warm_up()

    # --- runs ---

    def stop(self, username: str | None) -> str:
        return self.runs.stop(username)

    def run_loop(self, username: str | None, prompt: str, settings: dict[str, Any] | None = None,
                 source_image: Any = None) -> Iterator[RunView]:
        return self.runs.run_loop(username, prompt, settings, source_image)

    def continue_session(self, username: str | None, session_id: str, prompt: str | None = None,
                         rounds: int = 1) -> Iterator[RunView]:
        return self.runs.continue_session(username, checked.session_id(session_id),
                                          checked.optional_text(prompt, "prompt"),
                                          checked.whole_number(rounds, "rounds", 1, checked.MAX_ROUNDS))

    def retry_critique(self, username: str | None, candidate_id: int) -> RunView:
        """Critique a stored image again and show its session."""
        return self.library.open_session(
            username, self.runs.retry_critique(username, checked.record_id(candidate_id, "candidate id")))

    def candidate_image(self, username: str | None, candidate_id: int) -> Image.Image:
        return self.runs.candidate_image(username, checked.record_id(candidate_id, "candidate id"))

    def keep(self, username: str | None, candidate_id: int) -> str:
        return self.runs.keep(username, checked.record_id(candidate_id, "candidate id"))

    def generate(self, username: str | None, prompt: str, settings: dict[str, Any] | None = None,
                 source_image: Any = None) -> RunView:
        return self.runs.generate(username, prompt, settings, source_image)

    def critique(self, username: str | None, prompt: str, image: Any, source_image: Any = None) -> RunView:
        return self.runs.critique(username, prompt, image, source_image)

    # --- sessions ---

    def open_session(self, username: str | None, session_id: str) -> RunView:
        return self.library.open_session(username, checked.session_id(session_id))

    def session_dict(self, username: str | None, session_id: str, images: bool = False) -> dict[str, Any]:
        """A stored session as API clients read it; `images` is checked as a real bool first, so
        images="yes" or 1 is refused in words rather than read as true."""
        with_images = checked.flag(images, "images")
        return self.open_session(username, session_id).to_dict(images=with_images)

    def list_sessions(self, username: str | None, search: str = "", limit: int = 50) -> list[dict[str, Any]]:
        return self.library.list_sessions(username, checked.optional_text(search, "search") or "",
                                          checked.whole_number(limit, "limit", 1, 500))

    def delete_session(self, username: str | None, session_id: str) -> str:
        return self.library.delete_session(username, checked.session_id(session_id))

    def purge_session(self, username: str | None, session_id: str) -> str:
        return self.library.purge_session(username, checked.session_id(session_id))

    def hidden_sessions(self, username: str | None) -> list[dict[str, Any]]:
        return self.library.hidden_sessions(username)

    def purge_preview(self, username: str | None, session_id: str) -> dict[str, Any]:
        return self.library.purge_preview(username, checked.session_id(session_id))

    def stats(self, username: str | None) -> dict[str, int]:
        return self.library.stats(username)

    # --- review ---

    def next_critique(self, username: str | None, exclude: Sequence[int] = ()) -> dict[str, Any] | None:
        return self.review.next_critique(username, checked.record_ids(exclude, "critique id"))

    def critique_for_review(self, username: str | None, critique_id: int) -> dict[str, Any]:
        return self.review.critique(username, checked.record_id(critique_id, "critique id"))

    def annotate(self, username: str | None, critique_id: int, verdicts: dict[str, dict[str, Any]]) -> str:
        return self.review.annotate(username, checked.record_id(critique_id, "critique id"),
                                    checked.verdicts(verdicts))

    def skip_critique(self, username: str | None, critique_id: int) -> str:
        return self.review.skip_critique(username, checked.record_id(critique_id, "critique id"))

    def undo_annotation(self, username: str | None) -> dict[str, Any] | None:
        return self.review.undo_annotation(username)

    def critique_progress(self, username: str | None) -> dict[str, int]:
        return self.review.critique_progress(username)

    def next_pair(self, username: str | None, exclude: Sequence[str] = ()) -> dict[str, Any] | None:
        return self.review.next_pair(username, checked.pair_keys(exclude))

    def pick_pair(self, username: str | None, candidate_a: int, candidate_b: int, preference: str,
                  left_candidate: int | None = None) -> str:
        left = None if left_candidate is None else checked.record_id(left_candidate, "candidate id")
        return self.review.pick_pair(username, checked.record_id(candidate_a, "candidate id"),
                                     checked.record_id(candidate_b, "candidate id"), preference, left)

    def pick_side(self, username: str | None, left_candidate: int, right_candidate: int, side: str) -> str:
        return self.review.pick_side(username, checked.record_id(left_candidate, "candidate id"),
                                     checked.record_id(right_candidate, "candidate id"), side)

    def skip_pair(self, username: str | None, candidate_a: int, candidate_b: int) -> str:
        return self.review.skip_pair(username, checked.record_id(candidate_a, "candidate id"),
                                     checked.record_id(candidate_b, "candidate id"))

    def undo_pick(self, username: str | None) -> dict[str, Any] | None:
        return self.review.undo_pick(username)

    def pair_progress(self, username: str | None) -> dict[str, Any]:
        return self.review.pair_progress(username)

    def agreement(self, username: str | None) -> dict[str, Any]:
        return self.review.agreement(username)

    def disagreements(self, username: str | None) -> list[dict[str, Any]]:
        return self.review.disagreements(username)

    # --- export ---

    def export(self, username: str | None, fmt: str, parquet: bool = False,
               portable: bool = False) -> dict[str, Any]:
        return self.exports.export(username, fmt, checked.flag(parquet, "parquet"),
                                   checked.flag(portable, "portable"))

    def download(self, username: str | None, token: str) -> Path:
        """The export file behind a download link, if this user may have it (else NotFound)."""
        return self.exports.download(username, token)


    # --- training (admins) ---

    def training_overview(self, username: str | None) -> TrainingOverview:
        return self.training.overview(username)


def create_services(preset: str = "auto", *, database_url_text: str | None = None, critic_url: str | None = None,
                    critic_t2i_url: str | None = None, critic_edit_url: str | None = None,
                    critic_timeout: float | None = None, critic_retries: int | None = None,
                    low_memory: bool = False, auth: AuthSettings | None = None,
                    max_runs_per_user: int = 2, artefacts: Any = None, max_queued: int = 16,
                    gpu_workers: int = 1, plan: Any = None) -> Services:
    """The services `python app.py` runs: resolve the preset, upgrade the database (and fill in the
    critic prompts of critiques stored before they were kept), open the image store, and clear what
    killed or expired exports left in the exports folder and their dead download links (storage.gc). `artefacts`
    (rr_core.presets.Artefacts) loads a critic adapter and generator LoRAs over the preset's models;
    `plan`: the hardware profile's `rr_core.presets.ModelPlan` (studio.profile), None for the preset's
    own rules; `gpu_workers`: GPU jobs that run at once (1 on one GPU; more on ZeroGPU)."""
    from rr_core.paths import data_dir
    from rr_core.presets import Models, resolve_preset
    from storage.db import make_engine
    from storage.gc import collect_export_leftovers, export_retention_days, forget_dead_export_links
    from storage.migrate import upgrade_to_head

    url = database_url_text or database_url()
    engine = make_engine(url)
    upgrade_to_head(engine)
    resolved = resolve_preset(preset, critic_url=critic_url, low_memory=low_memory, critic_t2i_url=critic_t2i_url,
                              critic_edit_url=critic_edit_url, critic_timeout=critic_timeout,
                              critic_retries=critic_retries, artefacts=artefacts, plan=plan)
    store = ImageStore(data_dir() / "images")
    services = Services(Models(resolved), engine, store, auth=auth or AuthSettings.from_env(),
                        max_runs_per_user=max_runs_per_user, max_queued=max_queued, gpu_workers=gpu_workers,
                        exports_dir=data_dir() / "exports",
                        database_url_text=url, remote_critic=resolved.critic_kind == "openai")
    services.exports.backfill()
    collect_export_leftovers(services.exports_dir, export_retention_days()).log()
    forget_dead_export_links(engine, services.exports_dir)
    return services
