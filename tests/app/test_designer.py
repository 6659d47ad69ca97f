"""The designer's workflow (issue 17) at the seam between the service and the components: a real
service over the test doubles, the handlers and mappers the app wires, `{component: value}` out.
What only a browser shows is in test_browser_designer.py."""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image

from studio.uploads import HARD_CAP_PIXELS, prepare_upload
from studio.views import REWARD_SERIES, history_svg
from tests.app.conftest import ScriptedModels, make_service
from tests.scripted import ScriptedCritic, critique_text
from ui import mappers
from ui.examples import T2I_EXAMPLES, edit_examples
from ui.handlers import StudioHandlers
from ui.panels import RunForm, StudioUI, agreement_panel, annotate_panel, pair_panel, results_panel

TWO_ROUNDS = {"rounds": 2, "steps": 1, "stop_threshold": None, "seed": 5, "candidates": 1}


def signed_in(name: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(username=name, session={})


def varied_studio(scores=(3.0, 2.0, 1.5, 1.0)) -> ScriptedModels:
    """Critiques whose scores fall round by round (the first image is the best), each proposing a
    refined prompt that names its round."""
    studio = ScriptedModels()
    counter = itertools.count()

    def script(conversation):
        n = next(counter)
        task = "edit" if len(conversation.images) > 1 else "t2i"
        return critique_text(task, scores[n % len(scores)], refined=f"refined after critique {n + 1}")

    studio.critic_double = ScriptedCritic(script)
    return studio


@pytest.fixture()
def service(tmp_path):
    service = make_service(tmp_path, varied_studio())
    yield service
    service.engine.dispose()


@pytest.fixture()
def ui() -> StudioUI:
    with gr.Blocks():
        with gr.Tabs() as tabs:
            with gr.Tab("Create", id="create"):
                create = results_panel("create")
                create_form = RunForm(prompt=gr.Textbox(), seed=gr.Number(), randomize=gr.Checkbox(),
                                      steps=gr.Slider(1, 50), rounds=gr.Slider(1, 10), threshold=gr.Slider(1, 4),
                                      stop_early=gr.Checkbox(), plan=gr.Markdown(), negative=gr.Textbox(),
                                      candidates=gr.Slider(1, 4))
            with gr.Tab("Edit", id="edit"):
                source, slider = gr.Image(type="filepath"), gr.ImageSlider()
                edit = results_panel("edit")
                edit_form = RunForm(prompt=gr.Textbox(), seed=gr.Number(), randomize=gr.Checkbox(),
                                    steps=gr.Slider(1, 50), rounds=gr.Slider(1, 10), threshold=gr.Slider(1, 4),
                                    stop_early=gr.Checkbox(), plan=gr.Markdown())
            with gr.Tab("Annotate", id="annotate") as annotate_tab:
                annotate, pair, agreement = annotate_panel(), pair_panel(), agreement_panel()
            with gr.Tab("Sessions", id="sessions") as sessions_tab:
                table, chosen, counts = gr.Dataframe(), gr.Textbox(), gr.Markdown()
                with gr.Column() as export_group:
                    export_file, export_note, export_command = gr.File(), gr.Markdown(), gr.Code()
                sessions_gallery, selected_note = gr.Gallery(), gr.Markdown()
                with gr.Row(visible=False) as confirm_row:
                    confirm_text = gr.Markdown()
        yield StudioUI(create=create, edit=edit, annotate=annotate, pair=pair, agreement=agreement,
                       create_seed=create_form.seed,
                       edit_seed=edit_form.seed, source=source, slider=slider, tabs=tabs, table=table,
                       chosen=chosen, counts=counts, export_file=export_file, export_note=export_note,
                       export_command=export_command, who=gr.Markdown(), health=gr.Markdown(),
                       annotate_tab=annotate_tab, sessions_tab=sessions_tab, export_group=export_group,
                       create_form=create_form,
                       edit_form=edit_form, health_timer=gr.Timer(1.0), upload_note=gr.Markdown(),
                       sessions_gallery=sessions_gallery, selected_note=selected_note, confirm_row=confirm_row,
                       confirm_text=confirm_text)


def finished(service, prompt="a red fox in the snow", settings=TWO_ROUNDS):
    return list(service.run_loop(None, prompt, settings))[-1]


def create_args(prompt="a fox", seed=0, steps=4, rounds=2, threshold=3.5, stop_early=True):
    return dict(prompt=prompt, negative="", seed=seed, randomize=False, steps=steps, rounds=rounds, candidates=1,
                threshold=threshold, stop_early=stop_early)


# --- 1. validation before the run -----------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (create_args(prompt="   "), "request is empty"),
    (create_args(prompt="x" * 2001), "limit is 2000"),
    (create_args(seed=-3), "seed must be between"),
    (create_args(steps=0), "steps must be between"),
])
def test_bad_create_input_is_refused_by_the_check_before_any_output(service, ui, args, message):
    handlers = StudioHandlers(service, ui)
    with pytest.raises(gr.Error, match=message):
        handlers.check_create(**args, request=signed_in())
    assert handlers.check_create(**create_args(), request=signed_in()) is None
    assert service.list_sessions(None) == []  # nothing was started


def test_the_check_runs_before_the_run_in_the_app_wiring(service):
    """The run button's first event has no outputs (so nothing turns red); the run follows on success."""
    import app

    demo = app.build_app(service)
    config = demo.config
    deps = {d["api_name"]: d for d in config["dependencies"]}
    for check, run in (("ui_check_create", "ui_create"), ("ui_check_edit", "ui_edit"),
                       ("ui_check_more", "ui_more")):
        assert deps[check]["outputs"] == []
        assert deps[run]["trigger_after"] == deps[check]["id"] and deps[run]["trigger_only_on_success"]


def test_bad_edit_input_names_the_problem(service, ui, tmp_path):
    handlers = StudioHandlers(service, ui)
    fake = tmp_path / "photo.png"
    fake.write_text("not really a picture")
    args = dict(instruction="make it blue", seed=0, randomize=False, steps=1, rounds=1, threshold=3.5,
                stop_early=True, request=signed_in())
    with pytest.raises(gr.Error, match="Upload a source image"):
        handlers.check_edit(source=None, **args)
    with pytest.raises(gr.Error, match="not a readable image|corrupt"):
        handlers.check_edit(source=str(fake), **args)


# --- 3. the panel follows the selected thumbnail ----------------------------------------------------

def reward_in(html: str) -> str:
    return re.search(r"Reward: <b>([^<]+)</b>", html).group(1)


def test_selecting_a_thumbnail_shows_that_images_critique(service, ui):
    view = finished(service)
    handlers = StudioHandlers(service, ui)
    panel = ui.create
    first = mappers.result_values(panel, view)
    assert reward_in(first[panel.scores]) == "0.67"  # the best (round 1) is shown after the run
    second = view.candidates[1]
    shown = handlers.select_create(view.session_id, SimpleNamespace(index=1), request=signed_in())
    assert reward_in(shown[panel.scores]) == f"{second.reward:.2f}" == "0.33"
    assert shown[panel.candidate_id] == second.candidate_id
    assert shown[panel.raw] == second.critique.raw_text
    assert "Round 2" in shown[panel.caption] and "0.33" in shown[panel.caption]
    assert shown[panel.image] is not None and shown[panel.selected] == (1, 0)
    assert panel.refined not in shown  # looking at an image never rewrites the next prompt
    used = handlers.use_prompt_create(view.session_id, [1, 0], request=signed_in())
    assert used == {panel.refined: "refined after critique 2"}


def test_selecting_in_an_edit_session_moves_the_slider(service, ui):
    source = Image.new("RGB", (40, 32), (30, 144, 255))
    view = list(service.run_loop(None, "make the sky purple", TWO_ROUNDS, source_image=source))[-1]
    shown = StudioHandlers(service, ui).select_edit(view.session_id, SimpleNamespace(index=1), request=signed_in())
    assert shown[ui.slider][1].tobytes() == view.candidates[1].image.tobytes()


# --- 5. Stop keeps everything finished -------------------------------------------------------------

def test_stop_keeps_the_finished_rounds_on_screen(service, ui):
    views = service.run_loop(None, "a red fox in the snow", {**TWO_ROUNDS, "rounds": 3})
    view = None
    for view in views:
        if view.status == "Round 2: critiquing…":
            service.stop(None)
    assert view.stop_reason == "cancelled"
    values = mappers.result_values(ui.create, view)
    assert "No critique yet" not in values[ui.create.scores]
    assert reward_in(values[ui.create.scores]) == "0.67"
    assert values[ui.create.candidate_id] is not None and values[ui.create.image] is not None
    assert len(values[ui.create.gallery]) == 2  # the cut-short round's image is still there


# --- 2. a readable score history -------------------------------------------------------------------

def test_history_names_the_dimensions_and_counts_whole_rounds(service):
    svg = history_svg(finished(service))
    legend = re.findall(r"<span class='rr-key'><i[^>]*></i>([^<]+)</span>", svg)
    assert legend == ["Text Faithfulness", "Physical and Visual Quality", "Text Rendering", REWARD_SERIES]
    assert re.findall(r"class='rr-xtick'[^>]*>([^<]+)<", svg) == ["1", "2"]


def test_one_round_still_draws_a_point_per_series(service):
    svg = history_svg(finished(service, settings={**TWO_ROUNDS, "rounds": 1}))
    assert svg.count("<circle") == 4 and re.findall(r"class='rr-xtick'[^>]*>([^<]+)<", svg) == ["1"]


# --- 11. reopen restores the prompt and the settings ------------------------------------------------

def test_reopen_fills_the_form_back_in(service, ui):
    view = finished(service, settings={"rounds": 2, "steps": 3, "seed": 42, "stop_threshold": 3.2,
                                       "negative_prompt": "blurry"})
    shown = StudioHandlers(service, ui).open(view.session_id, request=signed_in())
    form = ui.create_form
    assert shown[form.prompt] == "a red fox in the snow"
    assert (shown[form.seed], shown[form.steps], shown[form.rounds]) == (42, 3, 2)
    assert shown[form.negative] == "blurry" and shown[form.stop_early] is True and shown[form.threshold] == 3.2
    assert shown[form.randomize] is False


def test_reopen_of_an_edit_session_restores_its_source(service, ui):
    source = Image.new("RGB", (40, 32), (30, 144, 255))
    view = list(service.run_loop(None, "make the sky purple", {"rounds": 1, "steps": 1, "stop_threshold": None},
                                 source_image=source))[-1]
    shown = StudioHandlers(service, ui).open(view.session_id, request=signed_in())
    assert shown[ui.edit_form.prompt] == "make the sky purple" and shown[ui.edit_form.stop_early] is False
    assert shown[ui.source].size == (40, 32)


# --- 12. messages name what the user sees ----------------------------------------------------------

@pytest.mark.parametrize("call", ["open", "delete"])
def test_no_session_picked_says_so_in_words(service, ui, call):
    handlers = StudioHandlers(service, ui)
    with pytest.raises(gr.Error, match="click its row"):
        handlers.open("", request=signed_in()) if call == "open" else handlers.delete(" ", "", request=signed_in())


# --- 17. stop-early is obvious before the run ------------------------------------------------------

def test_the_plan_line_says_a_run_may_stop_early():
    assert "up to 2" in mappers.plan_text(2, 3.5, True) and "stops early" in mappers.plan_text(2, 3.5, True)
    assert "3.5" in mappers.plan_text(2, 3.5, True)
    assert mappers.plan_text(2, 3.5, False) == "Runs **2** rounds (stopping early is off)."


def test_an_early_stop_says_how_many_rounds_ran(tmp_path, ui):
    service = make_service(tmp_path, varied_studio(scores=(4.0,)))
    view = finished(service, settings={"rounds": 2, "steps": 1, "stop_threshold": 3.5})
    status = mappers.result_values(ui.create, view)[ui.create.status]
    assert "after 1 of 2 rounds" in status
    service.engine.dispose()


# --- 9. the health line updates itself ---------------------------------------------------------------

def test_the_health_line_ticks_until_the_models_are_ready(service, ui):
    handlers = StudioHandlers(service, ui)
    service.health_check.state = "⏳ Models are loading…"
    ticking = handlers.health_tick(request=signed_in())
    assert "loading" in ticking[ui.health] and ticking[ui.health_timer].active is True
    service.health_check.state = "ready"
    ready = handlers.health_tick(request=signed_in())
    assert "ready" in ready[ui.health] and ready[ui.health_timer].active is False


def test_the_header_line_names_models_not_server_paths(tmp_path):
    studio = ScriptedModels()
    studio.preset = SimpleNamespace(describe=lambda: {
        "preset": "tiny", "critic": {"t2i": "/root/.cache/rr/tiny-qwen3-vl-critic"},
        "generators": {"t2i": "/root/.cache/rr/tiny-sd"}, "banner": "Offline demo mode: long text. More text."})
    service = make_service(tmp_path, studio)
    line = service.health_check.headline()
    assert "/root" not in line and "tiny-qwen3-vl-critic" in line and "\n" not in line
    assert "Offline demo mode" in line and "More text" not in line
    service.engine.dispose()


# --- 6 and 7. uploads ---------------------------------------------------------------------------------

def test_a_renamed_non_image_gets_a_specific_message(tmp_path, service, ui):
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"%PDF-1.4 this is a document")
    with pytest.raises(gr.Error, match="“holiday.png” is not an image"):
        StudioHandlers(service, ui).upload_source(str(fake), request=signed_in())


def test_an_empty_upload_says_empty(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        prepare_upload(empty)


def test_a_large_image_is_scaled_down_with_a_note(tmp_path, service, ui):
    big = tmp_path / "big.png"
    Image.new("RGB", (7000, 6000), (200, 30, 30)).save(big)  # 42 megapixels: over the old 40 MP refusal
    shown = StudioHandlers(service, ui).upload_source(str(big), request=signed_in())
    assert max(shown[ui.source].size) <= 1024 and shown[ui.source].size[0] % 16 == 0
    assert "Scaled down from 7000×6000" in shown[ui.upload_note]


def test_an_image_within_the_limit_is_said_to_be_rounded_not_scaled_down(tmp_path, service, ui):
    odd = tmp_path / "odd.png"
    Image.new("RGB", (600, 400), (30, 200, 30)).save(odd)  # under 1024: only 600 is off the 16-pixel grid
    shown = StudioHandlers(service, ui).upload_source(str(odd), request=signed_in())
    note = shown[ui.upload_note]
    assert shown[ui.source].size == (592, 400)
    assert "Scaled down" not in note
    assert "Rounded from 600×400 to 592×400" in note and "multiple of 16" in note


def test_an_image_already_on_the_grid_gets_no_note(tmp_path, service, ui):
    exact = tmp_path / "exact.png"
    Image.new("RGB", (640, 400), (30, 30, 200)).save(exact)
    shown = StudioHandlers(service, ui).upload_source(str(exact), request=signed_in())
    assert shown[ui.source].size == (640, 400) and shown[ui.upload_note] == ""


def test_a_decompression_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.png"
    side = int(HARD_CAP_PIXELS ** 0.5) + 100
    Image.new("1", (side, side)).save(bomb)  # small on disk, huge when decoded
    with pytest.raises(ValueError, match="megapixels are refused"):
        prepare_upload(bomb)


# --- 14. examples ---------------------------------------------------------------------------------------

def test_examples_exist_for_both_tasks():
    assert len(T2I_EXAMPLES) >= 3 and all(row[0].strip() for row in T2I_EXAMPLES)
    for path, instruction in edit_examples():
        assert Image.open(path).size == (512, 384) and instruction


# --- 15 and 8. the sessions list and the delete question ----------------------------------------------

def test_sessions_show_best_image_reward_request_rounds_and_date(service, ui):
    view = finished(service)
    shown = StudioHandlers(service, ui).sessions("", request=signed_in())
    table = shown[ui.table]
    assert list(table.columns)[:5] == ["request", "best reward", "rounds", "task", "date"]
    row = table.iloc[0]
    assert (row["request"], row["best reward"], row["rounds"]) == ("a red fox in the snow", "0.67", 2)
    (image, caption), = shown[ui.sessions_gallery]
    assert image.tobytes() == view.best_candidate.image.convert("RGB").tobytes()
    assert caption == "0.67 · a red fox in the snow"


def test_delete_asks_first_and_names_the_session_by_its_request(service, ui):
    view = finished(service)
    handlers = StudioHandlers(service, ui)
    table = handlers.sessions("", request=signed_in())[ui.table]
    picked = handlers.pick_session(table, SimpleNamespace(index=[0, 1]), request=signed_in())
    assert picked[ui.chosen] == view.session_id and view.session_id not in picked[ui.selected_note]
    asked = handlers.ask_delete(view.session_id, table, request=signed_in())
    assert asked[ui.confirm_row].visible is True
    assert "a red fox in the snow" in asked[ui.confirm_text] and view.session_id not in asked[ui.confirm_text]
    assert "kept" in asked[ui.confirm_text]
    assert service.list_sessions(None)  # asking deletes nothing
    done = handlers.delete(view.session_id, "", request=signed_in())
    assert done[ui.confirm_row].visible is False and done[ui.table].empty


# --- 16. export ------------------------------------------------------------------------------------------

def test_an_empty_export_says_so_and_offers_no_file(service, ui):
    shown = StudioHandlers(service, ui).export("pairs", False, request=signed_in())
    assert shown[ui.export_file] is None and "Nothing to export" in shown[ui.export_note]


def test_an_export_offers_the_portable_zip_and_a_command_that_names_the_data(service, ui):
    import zipfile

    finished(service)
    shown = StudioHandlers(service, ui).export("rl-prompts", False, request=signed_in())
    note = shown[ui.export_note]
    assert "Wrote **1** rl-prompts" in note
    link = re.search(r"\[Download the zip\]\(([^)]+)\)", note).group(1)  # the checked route, not a file path
    assert shown[ui.export_file] is None and str(service.exports_dir) not in note
    zipped = service.download(None, link.rsplit("/", 1)[-1])
    assert zipped.suffix == ".zip" and zipfile.is_zipfile(zipped)
    command = shown[ui.export_command]
    assert "--database-url" in command and "--images-dir" in command
