"""Cached examples on the first screen: warmed in the background with a real critic, shown at once on
a click, never computed with the tiny preset."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pytest

from rr_core.presets import Models, resolve_preset
from studio.examples import Example, ExampleCache
from ui.examples import ExampleRuns
from ui.mappers import result_values, slider_value
from ui.panels import results_panel

EXAMPLE = Example("a lighthouse at dusk", {"rounds": 2, "steps": 1, "stop_threshold": None})


class ScriptedRealModels(Models):
    """The tiny models presented as a real critic (no tiny banner), counting the loops started."""

    loops = 0

    def loop(self, task):
        ScriptedRealModels.loops += 1
        return super().loop(task)


def real_models() -> ScriptedRealModels:
    return ScriptedRealModels(dataclasses.replace(resolve_preset("tiny"), banner=""))


def panel():
    with gr.Blocks():
        return results_panel("create")


@pytest.mark.slow
def test_a_real_critic_warms_once_in_the_background_and_a_click_shows_the_finished_run(tmp_path):
    ScriptedRealModels.loops = 0
    started = []
    runs = ExampleRuns(ExampleCache(real_models(), tmp_path / "examples"), [EXAMPLE])
    thread = runs.start(before=lambda: started.append("models loaded"))
    assert thread is not None and thread.daemon  # the server starts without waiting for it
    thread.join(timeout=300)
    assert not thread.is_alive() and started == ["models loaded"]
    assert ScriptedRealModels.loops == 1 and len(list((tmp_path / "examples").glob("*.pickle"))) == 1

    restarted = ExampleRuns(ExampleCache(real_models(), tmp_path / "examples"), [EXAMPLE])
    restarted.start().join(timeout=60)
    assert ScriptedRealModels.loops == 1  # the stored run is reused, nothing recomputed

    create = panel()
    shown = restarted.show(create)((0, [f"  {EXAMPLE.prompt} "]))
    view = restarted.cache.view(EXAMPLE)
    expected = result_values(create, view)
    assert set(shown) == set(expected)
    assert shown[create.status] == expected[create.status] and view.run.done
    assert shown[create.gallery] and len(shown[create.gallery]) == len(expected[create.gallery])
    assert shown[create.refined] == expected[create.refined]
    assert ScriptedRealModels.loops == 1


@pytest.mark.slow
def test_an_edit_example_shows_its_before_and_after(tmp_path):
    from PIL import Image
    edit = Example("make the sky purple", {"rounds": 1, "steps": 1, "stop_threshold": None},
                   Image.new("RGB", (64, 64), (40, 90, 200)))
    runs = ExampleRuns(ExampleCache(real_models(), tmp_path), [edit])
    runs.start().join(timeout=300)
    with gr.Blocks():
        panel_ = results_panel("edit")
        slider = gr.ImageSlider()
    shown = runs.show(panel_, slider)((0, [{"path": "/some/upload.png"}, "make the sky purple"]))
    assert shown[slider] == slider_value(runs.cache.view(edit)) and shown[slider] is not None
    assert shown[panel_.image] is not None


def test_an_example_not_cached_yet_only_fills_the_inputs(tmp_path):
    runs = ExampleRuns(ExampleCache(real_models(), tmp_path), [EXAMPLE])
    assert runs.enabled
    assert runs.show(panel())((0, [EXAMPLE.prompt])) == {}
    assert runs.show(panel())((1, ["a prompt that is no example"])) == {}


def test_the_tiny_preset_computes_nothing(tmp_path):
    ScriptedRealModels.loops = 0
    tiny = ScriptedRealModels(resolve_preset("tiny"))
    runs = ExampleRuns(ExampleCache(tiny, tmp_path / "examples"), [EXAMPLE])
    assert not runs.enabled and runs.start() is None
    assert runs.show(panel())((0, [EXAMPLE.prompt])) == {}
    assert ScriptedRealModels.loops == 0 and not (tmp_path / "examples").exists()


def test_the_default_examples_are_the_ones_on_screen():
    from ui.examples import T2I_EXAMPLES, default_examples, edit_examples
    examples = default_examples()
    assert [e.prompt for e in examples if e.source is None] == [row[0] for row in T2I_EXAMPLES]
    assert [e.prompt for e in examples if e.source is not None] == [row[1] for row in edit_examples()]


def test_warming_waits_for_its_turn_on_the_gpu_behind_a_visitors_run(tmp_path):
    import time

    from studio.scheduling import FairScheduler

    ScriptedRealModels.loops = 0
    slots = FairScheduler(per_user=2, capacity=4, workers=1)
    visitor = slots.submit("alice")
    visitor.wait()  # a visitor's loop holds the one GPU turn
    runs = ExampleRuns(ExampleCache(real_models(), tmp_path), [EXAMPLE], slots=slots)
    thread = runs.start()
    time.sleep(1.0)
    assert ScriptedRealModels.loops == 0 and slots.jobs("examples") == 1  # queued, not running beside it
    slots.release(visitor)
    thread.join(timeout=300)
    assert ScriptedRealModels.loops == 1 and slots.jobs("examples") == 0
    assert runs.view(EXAMPLE.prompt) is not None


def test_a_full_queue_leaves_the_example_uncached_and_the_thread_ends(tmp_path):
    from studio.scheduling import FairScheduler

    ScriptedRealModels.loops = 0
    slots = FairScheduler(per_user=1, capacity=1, workers=1)
    visitor = slots.submit("alice")
    runs = ExampleRuns(ExampleCache(real_models(), tmp_path), [EXAMPLE], slots=slots)
    runs.start().join(timeout=60)
    assert ScriptedRealModels.loops == 0 and runs.view(EXAMPLE.prompt) is None
    slots.release(visitor)
