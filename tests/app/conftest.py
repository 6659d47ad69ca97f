"""Launch the studio app in-process for tests: a temp data dir and database per module, the tiny preset
(or the scripted test doubles where a test is about wiring, not models)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from studio.container import Services
from studio.users import AuthSettings
from tests.studio.conftest import ScriptedModels, make_services  # noqa: F401 (ScriptedModels: for the app tests)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_studio():
    from rr_core.presets import Models, resolve_preset

    return Models(resolve_preset("tiny"))


def make_service(root: Path, studio, auth: AuthSettings | None = None, **kwargs) -> Services:
    """The services over `studio` (the models) with a fresh SQLite database under `root`."""
    return make_services(root, studio, auth=auth, **kwargs)


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
