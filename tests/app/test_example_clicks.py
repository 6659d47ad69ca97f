"""The app's example lists with a real critic: a click on a cached example shows its finished run in
the results panel (through the same processing a browser's click goes through)."""

from __future__ import annotations

import asyncio

import app
from studio.examples import ExampleCache
from tests.app.conftest import ScriptedModels, make_service, tiny_studio
from ui.examples import T2I_EXAMPLES, ExampleRuns, edit_examples


def click(demo, api_name: str, index: int) -> dict:
    """What the app returns to a browser that clicked example `index` of a list: component id -> value."""
    fn = next(f for f in demo.fns.values() if f.api_name == api_name)
    result = asyncio.run(demo.process_api(block_fn=fn, inputs=[index], state=None))
    return {block._id: value for block, value in zip(fn.outputs, result["data"], strict=True)}


def test_a_cached_example_click_fills_the_results_panel(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
    models = ScriptedModels()
    service = make_service(tmp_path, models)
    runs = ExampleRuns(ExampleCache(models))
    runs.start().join(timeout=120)
    demo = app.build_app(service)  # the default example runs: the service's models, the data folder

    shown = click(demo, "ui_example_create", 1)
    view = runs.view(T2I_EXAMPLES[1][0])
    assert view is not None and view.run.done
    texts = [value for value in shown.values() if isinstance(value, str)]
    assert any(text.startswith("Example: a finished loop, computed once") for text in texts)
    lists = [value for value in shown.values() if isinstance(value, list)]
    assert any(len(value) == len(view.run.state.rounds) for value in lists)

    edited = click(demo, "ui_example_edit", 0)
    assert any(isinstance(value, str) and value.startswith("Example:") for value in edited.values())
    assert runs.view(edit_examples()[0][1]) is not None


def test_the_tiny_preset_wires_no_example_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
    demo = app.build_app(make_service(tmp_path, tiny_studio()))
    assert not [f for f in demo.fns.values() if (f.api_name or "").startswith("ui_example_")]
    assert not (tmp_path / "data" / "examples").exists()


def test_main_warms_the_examples_in_the_background_after_the_models_load(tmp_path, monkeypatch):
    """`python app.py` with a real critic: the server launches while the models are still loading, and
    the examples are computed after them, in the same background thread."""
    import threading
    from types import SimpleNamespace

    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
    models = ScriptedModels()
    models.preset.profile = None
    service = make_service(tmp_path, models)
    loading = threading.Event()
    order: list[str] = []

    def slow_warm_up() -> None:
        loading.wait(timeout=30)
        order.append("models loaded")

    monkeypatch.setattr(service, "warm_up", slow_warm_up)
    monkeypatch.setattr(app, "create_services", lambda preset, **kwargs: service)
    built: dict = {}

    def fake_build_app(svc, examples=None):
        built["examples"] = examples
        return SimpleNamespace(queue=lambda **kw: None, launch=lambda **kw: order.append("launched"))

    monkeypatch.setattr(app, "build_app", fake_build_app)
    app.main(["--preset", "tiny"])
    assert order == ["launched"]  # served before the models (and so the examples) were ready
    loading.set()
    worker = next(t for t in threading.enumerate() if t.name == "example-runs")
    worker.join(timeout=120)
    assert order == ["launched", "models loaded"]
    runs = built["examples"]
    assert runs.enabled and all(runs.view(example.prompt) is not None for example in runs.examples)


def test_in_a_browser_a_cached_example_shows_its_finished_run_at_once(tmp_path, monkeypatch):
    """A visitor clicks a prompt example: the prompt fills in and the finished loop appears,
    with no run started."""
    from playwright.sync_api import sync_playwright

    from tests.app.conftest import launched
    from ui import browser

    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
    models = ScriptedModels()
    service = make_service(tmp_path, models)
    ExampleRuns(ExampleCache(models), slots=service.runs.slots).start().join(timeout=120)
    with launched(service) as url, sync_playwright() as playwright:
        chromium = browser.launch_chromium(playwright)
        try:
            page = chromium.new_page(viewport=browser.VIEWPORT)
            page.goto(url)
            page.wait_for_selector("#create-prompt textarea")
            page.locator("#create-examples").get_by_text(T2I_EXAMPLES[3][0]).click()
            page.wait_for_function("document.querySelector('#create-status')?.innerText.includes('Example:')",
                                   timeout=20000)
            assert page.input_value("#create-prompt textarea") == T2I_EXAMPLES[3][0]
            assert page.locator("#create-status").inner_text().startswith("Example: a finished loop")
        finally:
            chromium.close()


def test_the_examples_run_with_the_forms_defaults(tmp_path, monkeypatch):
    """A cached run is what the visitor gets from the example and the run button: same settings."""
    from ui.examples import CREATE_SETTINGS, EDIT_SETTINGS

    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
    demo = app.build_app(make_service(tmp_path, tiny_studio()))
    blocks = [block for block in demo.blocks.values() if hasattr(block, "value")]
    values = {block.elem_id: block.value for block in blocks if block.elem_id}
    thresholds = [block.value for block in blocks if getattr(block, "label", None) == "Stop threshold"]
    assert thresholds == [CREATE_SETTINGS["stop_threshold"], EDIT_SETTINGS["stop_threshold"]]
    for prefix, settings in (("create", CREATE_SETTINGS), ("edit", EDIT_SETTINGS)):
        for key in ("seed", "steps", "rounds"):
            assert values[f"{prefix}-{key}"] == settings[key], (prefix, key)
        assert values[f"{prefix}-stop-early"] is True
