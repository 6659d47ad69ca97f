"""Launch the studio app in-process for tests: a temp data dir and database per module, the tiny preset
(or the scripted test doubles where a test is about wiring, not models)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sqlalchemy import inspect, select

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


ANNOTATION_AUTH = "alice:pa:designer,carol:pc:annotator"
"""A designer who makes the sessions and an annotator who reviews them in the browser."""


@contextmanager
def annotator_in_browser(root: Path, make_sessions: Callable[[Services], None]) -> Iterator[tuple]:
    """Signed in as the annotator `carol` on the Review view of an app over the scripted doubles,
    after `make_sessions(service)` has run the designer's sessions; yields (page, service)."""
    from playwright.sync_api import sync_playwright

    from ui import browser

    service = make_service(root, ScriptedModels(), auth=AuthSettings.parse(ANNOTATION_AUTH))
    make_sessions(service)
    with launched(service) as url, sync_playwright() as playwright:
        chromium = browser.launch_chromium(playwright)
        try:
            page = chromium.new_page(viewport=browser.VIEWPORT)
            browser.sign_in(page, url, "carol", "pc")
            browser.open_annotate(page)
            yield page, service
        finally:
            chromium.close()


def rows(service: Services, model, *where) -> list:
    """The rows of `model` matching `where`, in primary-key order."""
    with service.sessions() as db:
        return list(db.scalars(select(model).where(*where).order_by(*inspect(model).primary_key)))


def wait_for_rows(page, service: Services, model, more_than: int, tries: int = 50) -> list:
    """Poll until the table of `model` holds more than `more_than` rows (a pick or verdict is stored
    after the page has answered the key press); returns the rows, however many there are by then."""
    found = rows(service, model)
    for _ in range(tries):
        if len(found) > more_than:
            break
        page.wait_for_timeout(200)
        found = rows(service, model)
    return found


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
