"""Launch the studio app in-process for tests: a temp data dir and database per module, the tiny preset
(or the scripted test doubles where a test is about wiring, not models)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from rr_core.critics.router import TaskRouter
from rr_core.loop import RefineLoop
from storage.db import make_engine
from storage.images import ImageStore
from storage.migrate import upgrade_to_head
from studio.container import Services
from studio.users import AuthSettings
from tests.scripted import PaintGenerator, ScriptedCritic, critique_text, request_of


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScriptedModels:
    """A Models-like object over the test doubles: each critique proposes "<request> refined"."""

    def __init__(self) -> None:
        self.preset = SimpleNamespace(describe=lambda: {"preset": "scripted", "critic": {"t2i": "scripted-critic"},
                                                        "generators": {"t2i": "paint"}, "banner": ""},
                                      critic_kind="scripted")
        self.generator_double = PaintGenerator()
        self.critic_double = ScriptedCritic(
            lambda conversation: critique_text("edit" if len(conversation.images) > 1 else "t2i", 2.5,
                                               refined=f"{request_of(conversation)} refined"))

    def critic(self) -> TaskRouter:
        return TaskRouter({"t2i": self.critic_double, "edit": self.critic_double})

    def generator(self, task):
        return self.generator_double

    def loop(self, task) -> RefineLoop:
        return RefineLoop(self.generator_double, self.critic(), task)


def tiny_studio():
    from rr_core.presets import Models, resolve_preset

    return Models(resolve_preset("tiny"))


def make_service(root: Path, studio, auth: AuthSettings | None = None, **kwargs) -> Services:
    url = f"sqlite:///{root / 'studio.sqlite3'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    return Services(studio, engine, ImageStore(root / "images"), auth=auth, exports_dir=root / "exports",
                         database_url_text=url, **kwargs)


@contextmanager
def launched(service: Services) -> Iterator[str]:
    """The app on 127.0.0.1 at a free port; yields its URL."""
    import app

    demo = app.build_app(service)
    demo.queue(default_concurrency_limit=8)
    kwargs = app.launch_kwargs(service)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **kwargs)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        service.engine.dispose()


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("app")
    previous = os.environ.get("RR_DATA_DIR")
    os.environ["RR_DATA_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("RR_DATA_DIR", None)
    else:
        os.environ["RR_DATA_DIR"] = previous
