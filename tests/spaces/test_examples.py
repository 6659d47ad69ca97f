"""Cached examples: a finished loop per example, computed once with a real critic and kept on disk."""

from __future__ import annotations

import pytest

from rr_core.presets import Models, resolve_preset
from studio.examples import Example, ExampleCache

EXAMPLE = Example("a lighthouse at dusk", {"rounds": 2, "steps": 1, "stop_threshold": None})


class CountingStudio(Models):
    """The tiny models, counting how many loops were started."""

    loops = 0

    def loop(self, task):
        CountingStudio.loops += 1
        return super().loop(task)


@pytest.mark.slow
def test_an_example_is_computed_once_and_read_back_after_a_restart(tmp_path):
    CountingStudio.loops = 0
    first = ExampleCache(CountingStudio(resolve_preset("tiny")), tmp_path / "examples")
    views = first.warm([EXAMPLE], force=True)
    view = views[EXAMPLE.prompt]
    assert view.run.done and len(view.run.state.rounds) == 2
    assert all(c.critique is not None for r in view.run.state.rounds for c in r.candidates)
    assert CountingStudio.loops == 1

    restarted = ExampleCache(CountingStudio(resolve_preset("tiny")), tmp_path / "examples")
    again = restarted.warm([EXAMPLE], force=True)[EXAMPLE.prompt]
    assert CountingStudio.loops == 1  # read from disk, no loop ran
    assert again.run.done and again.run.state.best_round is not None
    assert [r.prompt for r in again.run.state.rounds] == [r.prompt for r in view.run.state.rounds]
    assert list((tmp_path / "examples").glob("*.pickle")) and not list((tmp_path / "examples").glob("*.partial"))


def test_without_a_real_critic_nothing_is_computed(tmp_path):
    cache = ExampleCache(Models(resolve_preset("tiny")), tmp_path / "examples")
    assert not cache.enabled
    assert cache.warm([EXAMPLE]) == {} and cache.view(EXAMPLE) is None
    assert not (tmp_path / "examples").exists()


def test_the_cache_key_follows_the_example_and_the_models(tmp_path):
    cache = ExampleCache(Models(resolve_preset("tiny")), tmp_path)
    other_settings = Example(EXAMPLE.prompt, {"rounds": 3})
    assert cache.key(EXAMPLE) != cache.key(other_settings)
    assert cache.key(EXAMPLE) == cache.key(Example(EXAMPLE.prompt, dict(EXAMPLE.settings)))


def test_the_default_folder_is_under_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path))
    assert ExampleCache(Models(resolve_preset("tiny"))).folder == tmp_path / "examples"


def test_a_failing_example_is_left_out_and_the_rest_cached(tmp_path):
    cache = ExampleCache(Models(resolve_preset("tiny")), tmp_path)
    views = cache.warm([Example("   "), EXAMPLE], force=True)
    assert list(views) == [EXAMPLE.prompt]
