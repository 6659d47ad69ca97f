"""Runs as a user starts them: per-user slots, stop, single steps, and what a failed critique leaves."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from rr_core.errors import InvalidRequest
from storage.models import SessionRow
from studio.runs import RunLimitExceeded
from tests.studio.conftest import ScriptedModels, make_services


def test_runs_per_user_are_limited(tmp_path):
    models = ScriptedModels()
    models.critic_double.delay_s = 0.5
    services = make_services(tmp_path, models, max_runs_per_user=1)
    started = threading.Event()

    def first_run():
        for _ in services.run_loop(None, "a slow one", {"rounds": 1}):
            started.set()

    worker = threading.Thread(target=first_run)
    worker.start()
    assert started.wait(10)
    with pytest.raises(RunLimitExceeded, match="already have 1 run"):
        next(services.run_loop(None, "a second one", {"rounds": 1}))
    worker.join()
    assert sum(1 for _ in services.run_loop(None, "after the first", {"rounds": 1})) > 1
    with services.sessions() as db:  # the refused run left no session behind
        assert sorted(s.request for s in db.scalars(select(SessionRow))) == ["a slow one", "after the first"]
    services.engine.dispose()


def test_stop_ends_a_run_after_its_current_step(services, models):
    models.critic_double.delay_s = 0.3
    views = services.run_loop(None, "a long session", {"rounds": 5, "stop_threshold": None})
    next(views)
    assert services.stop(None) == "Stopping 1 run(s) after the current step."
    last = list(views)[-1]
    assert last.done and last.stop_reason == "cancelled" and len(last.rounds) < 5
    assert services.stop(None) == "Nothing is running."


def test_a_critique_is_stored_as_a_one_round_session(services):
    from PIL import Image

    view = services.critique(None, "a green square", Image.new("RGB", (32, 32), (0, 200, 0)))
    assert view.done and view.rounds[0].pick == 0 and view.rounds[0].candidates[0].candidate_id is not None
    assert services.open_session(None, view.session_id).run.summary() == view.run.summary()


def test_generate_stores_images_without_critiques(services):
    view = services.generate(None, "two cats", {"candidates": 2})
    assert [c.critique for c in view.rounds[0].candidates] == [None, None]
    assert view.rounds[0].pick is None and view.next_prompt == "two cats"
    assert services.open_session(None, view.session_id).run.summary() == view.run.summary()


def test_bad_settings_are_refused_with_a_clear_error(services):
    with pytest.raises(InvalidRequest, match="negative prompt"):
        next(services.run_loop(None, "a cat", {"negative_prompt": "x" * 5000}))
    with pytest.raises(InvalidRequest, match="rounds"):
        next(services.run_loop(None, "a cat", {"rounds": 0}))
