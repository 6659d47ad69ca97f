"""The application layer over test doubles: a scripted critic, a painting generator, a temp database
and image store per test. No Gradio, no models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from rr_core.critics.router import TaskRouter
from rr_core.loop import RefineLoop
from rr_core.prompts import Conversation
from storage.db import make_engine
from storage.images import ImageStore
from storage.migrate import upgrade_to_head
from studio.container import Services
from studio.users import AuthSettings
from tests.scripted import PaintGenerator, ScriptedCritic, critique_text, request_of


def task_of(conversation: Conversation) -> str:
    return "edit" if len(conversation.images) > 1 else "t2i"


def refined_by_default(conversation: Conversation) -> str:
    """Every critique scores 2.5 and proposes "<request> refined"."""
    return critique_text(task_of(conversation), 2.5, refined=f"{request_of(conversation)} refined")


class ScriptedModels:
    """What rr_core.presets.Models gives the services, over the test doubles; `script` decides each
    critique's text and may be replaced by a test."""

    def __init__(self, script: Callable[[Conversation], str] = refined_by_default) -> None:
        self.preset = SimpleNamespace(describe=lambda: {"preset": "scripted", "critic": {"t2i": "scripted-critic"},
                                                        "generators": {"t2i": "paint"}, "banner": ""},
                                      critic_kind="scripted")
        self.generator_double = PaintGenerator()
        self.script = script
        self.critic_double = ScriptedCritic(lambda conversation: self.script(conversation))

    def critic(self) -> TaskRouter:
        return TaskRouter({"t2i": self.critic_double, "edit": self.critic_double})

    def generator(self, task):
        return self.generator_double

    def loop(self, task) -> RefineLoop:
        return RefineLoop(self.generator_double, self.critic(), task)


def make_services(root: Path, models=None, auth: AuthSettings | None = None, **kwargs) -> Services:
    url = f"sqlite:///{root / 'studio.sqlite3'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    return Services(models or ScriptedModels(), engine, ImageStore(root / "images"), auth=auth,
                    exports_dir=root / "exports", database_url_text=url, **kwargs)


@pytest.fixture
def models() -> ScriptedModels:
    return ScriptedModels()


@pytest.fixture
def services(tmp_path, models) -> Iterator[Services]:
    built = make_services(tmp_path, models)
    yield built
    built.engine.dispose()


TEAM_AUTH = "alice:pa:designer,carol:pc:annotator,dave:pd:annotator,root:pr:admin"
"""Sign-in for a team: a designer, two annotators and an admin."""


@pytest.fixture
def team_services(tmp_path) -> Iterator[Services]:
    """The services under sign-in for TEAM_AUTH."""
    built = make_services(tmp_path, auth=AuthSettings.parse(TEAM_AUTH))
    yield built
    built.engine.dispose()


def alices_session(services: Services, prompt: str, seed: int = 0) -> tuple[str, list[str]]:
    """A one-round, two-candidate session of alice's; its id and its images' hashes."""
    from sqlalchemy import select

    from storage.models import CandidateRow

    view = list(services.run_loop("alice", prompt, {"rounds": 1, "candidates": 2, "seed": seed}))[-1]
    with services.sessions() as db:
        hashes = list(db.scalars(select(CandidateRow.image_sha256).where(CandidateRow.session_id == view.session_id)))
    return view.session_id, hashes


def count_rows(services: Services, model, *where) -> int:
    """How many rows of `model` match `where`."""
    from sqlalchemy import func, select

    with services.sessions() as db:
        return db.scalar(select(func.count()).select_from(model).where(*where))


def raised(call: Callable[[], object], kind: type[BaseException] = Exception) -> BaseException:
    """What `call()` raises; a generator it returns is run to its end (a streaming service method
    checks its input when it is iterated)."""
    with pytest.raises(kind) as caught:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return caught.value
