"""The UI's value mappers and handlers without a browser: views from a real service over the test
doubles go in, `{component: value}` dicts come out, and every handler names who acts through
gr.Request, never through a position in *args."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image
from sqlalchemy import select

from studio.users import AuthSettings
from storage.models import Annotation, PairJudgement
from tests.app.conftest import ScriptedModels, make_service
from ui import mappers
from ui.handlers import StudioHandlers
from ui.panels import StudioUI, agreement_panel, annotate_panel, pair_panel, purge_panel, results_panel

ROOT = Path(__file__).resolve().parents[2]
AUTH = "alice:pa:designer,bob:pb:designer,carol:pc:annotator,root:pr:admin"
NEVER_STOP = {"rounds": 2, "steps": 1, "stop_threshold": None}


def signed_in(name: str | None) -> SimpleNamespace:
    """What gr.Request carries for a password-auth user (username) or an anonymous call (None)."""
    return SimpleNamespace(username=name, session={})


@pytest.fixture()
def service(tmp_path):
    service = make_service(tmp_path, ScriptedModels(), auth=AuthSettings.parse(AUTH))
    yield service
    service.engine.dispose()


@pytest.fixture()
def panels() -> StudioUI:
    """Every component a handler sets, laid out plainly (the layout itself is app.py's)."""
    with gr.Blocks():
        with gr.Tabs() as tabs:
            with gr.Tab("Create", id="create"):
                create, create_seed = results_panel("create"), gr.Number()
            with gr.Tab("Edit", id="edit"):
                source, slider = gr.Image(type="filepath"), gr.ImageSlider()
                edit, edit_seed = results_panel("edit"), gr.Number()
            with gr.Tab("Annotate", id="annotate") as annotate_tab:
                annotate, pair, agreement = annotate_panel(), pair_panel(), agreement_panel()
            with gr.Tab("Sessions", id="sessions") as sessions_tab:
                table, chosen = gr.Dataframe(), gr.Textbox()
                with gr.Column() as export_group:
                    counts, export_file, export_note, export_command = gr.Markdown(), gr.File(), gr.Markdown(), gr.Code()
                purge = purge_panel(mappers.HIDDEN_COLUMNS, mappers.HIDDEN_COLUMN_WIDTHS)
        yield StudioUI(create=create, edit=edit, annotate=annotate, pair=pair, agreement=agreement,
                       create_seed=create_seed,
                       edit_seed=edit_seed, source=source, slider=slider, tabs=tabs, table=table, chosen=chosen,
                       counts=counts, export_file=export_file, export_note=export_note,
                       export_command=export_command, who=gr.Markdown(), health=gr.Markdown(),
                       annotate_tab=annotate_tab, sessions_tab=sessions_tab, export_group=export_group,
                       purge=purge)


def t2i_view(service):
    return list(service.run_loop("alice", "a red fox in the snow", NEVER_STOP))[-1]


def edit_view(service):
    source = Image.new("RGB", (40, 32), (30, 144, 255))
    return list(service.run_loop("alice", "make the sky purple", {"rounds": 1, "steps": 1},
                                 source_image=source))[-1]


def test_result_values_name_each_component(service, panels):
    view = t2i_view(service)
    panel = panels.create
    values = mappers.result_values(panel, view)
    assert set(values) <= set(panel.outputs)
    assert values[panel.session] == view.session_id
    assert values[panel.status].startswith("Done")
    assert "scored against your request" in values[panel.status]
    assert values[panel.refined] == view.next_prompt and view.next_prompt.endswith("refined")
    assert values[panel.candidate_id] == view.best_candidate.candidate_id  # the best image is the one to keep
    assert len(values[panel.gallery]) == 2
    assert values[panel.retry]["visible"] is False
    assert "<svg" in values[panel.plot] and values[panel.plot].count("<circle") == 8  # 3 dims + reward, 2 rounds
    assert values[panel.scores].count("class='rr-score'") == 3


def test_a_light_refresh_only_touches_the_streaming_text(service, panels):
    view = t2i_view(service)
    view.live_text = "# User Request Analysis\nThe req"
    assert mappers.result_values(panels.create, view, light=True) == {panels.create.raw: view.live_text}


def test_an_unfinished_round_leaves_the_refined_prompt_alone(service, panels):
    view = t2i_view(service)
    view.run.done = False
    view.run.start_round(len(view.rounds), "a red fox in the snow, third try")  # a round in flight
    assert not view.rounds[-1].done
    assert panels.create.refined not in mappers.result_values(panels.create, view)


def test_slider_value_pairs_source_and_latest(service):
    view = edit_view(service)
    before, after = mappers.slider_value(view)
    assert before is view.source_image and after is view.latest.image
    assert mappers.slider_value(t2i_view(service)) is None


@pytest.mark.parametrize("make_view, shown", [(t2i_view, 3), (edit_view, 4)])
def test_critique_values_show_one_row_per_dimension(service, panels, make_view, shown):
    make_view(service)
    item = service.next_critique("carol")
    panel = panels.annotate
    values = mappers.critique_values(panel, item, {"skipped": [], "history": []})
    assert set(values) <= set(panel.outputs)
    assert values[panel.loaded] == {"id": item["critique_id"], "keys": [r["key"] for r in item["scores"]]}
    assert [values[d.row]["visible"] for d in panel.dims] == [True] * shown + [False] * (4 - shown)
    assert values[panel.source]["visible"] is (shown == 4)
    for dim, row in zip(panel.dims, item["scores"]):
        assert row["heading"] in values[dim.text]
        # The corrected score starts empty; the critic's score is its placeholder.
        assert values[dim.score]["value"] is None and values[dim.score]["placeholder"] == f"critic: {row['score']:g}"
        assert values[dim.verdict]["value"] is None and values[dim.comment] == ""
    assert "round 1 · #1" in values[panel.request] and "Reviewed 0 by you" in values[panel.progress]


def test_critique_values_for_an_empty_queue(panels):
    panel = panels.annotate
    progress = {"mine": 2, "remaining": 0, "everyone": 3, "total": 2}
    values = mappers.critique_values(panel, None, {"skipped": [], "history": []}, progress)
    assert values[panel.loaded] is None and "Reviewed 2 by you" in values[panel.progress]
    assert values[panel.loaded] is None and "Nothing left to review" in values[panel.progress]
    assert all(values[d.row]["visible"] is False for d in panel.dims)


def test_verdicts_of_reads_each_loaded_dimension(panels):
    panel = panels.annotate
    loaded = {"id": 7, "keys": ["text_faithfulness", "image_faithfulness", "physical_quality",
                                "text_rendering"]}
    form = {panel.loaded: loaded}
    entered = [("accept", "", None), (None, "ignored", 2.0), ("correct", "too high", 2.5), ("reject", None, None)]
    for dim, (verdict, comment, score) in zip(panel.dims, entered):
        form.update({dim.verdict: verdict, dim.comment: comment, dim.score: score})
    assert mappers.verdicts_of(panel, form) == (7, {
        "text_faithfulness": {"verdict": "accept", "comment": "", "score": None},
        "physical_quality": {"verdict": "correct", "comment": "too high", "score": 2.5},
        "text_rendering": {"verdict": "reject", "comment": "", "score": None}})


def test_verdicts_of_without_a_loaded_critique(panels):
    with pytest.raises(ValueError, match="No critique loaded"):
        mappers.verdicts_of(panels.annotate, {panels.annotate.loaded: None})


def test_pair_values_name_the_sides_as_the_gallery_does(panels):
    panel = panels.pair
    image = Image.new("RGB", (8, 8))
    progress = {"mine": 1, "remaining": 2, "everyone": 1, "total": 3, "left_share": 1.0}
    pair = {"key": "pair:3-5", "request": "a fox", "progress": progress,
            "left": {"candidate_id": 5, "label": "round 2 · #1", "prompt": "a red fox", "image": image},
            "right": {"candidate_id": 3, "label": "round 1 · #1", "prompt": "a fox", "image": image}}
    values = mappers.pair_values(panel, pair, {"skipped": []})
    assert values[panel.pair] == {"left": 5, "right": 3, "key": "pair:3-5"}
    assert values[panel.image_left]["label"] == "Left: round 2 · #1"
    assert "Left (round 2 · #1): a red fox" in values[panel.text]
    assert "Right (round 1 · #1): a fox" in values[panel.text]
    assert "your left picks: 100%" in values[panel.progress]
    empty = mappers.pair_values(panel, None, {"skipped": []}, progress)
    assert empty[panel.pair] is None and empty[panel.text] == "No pairs left to compare."


def test_settings_of():
    settings = mappers.settings_of(negative="", seed=7.0, randomize=False, steps=4.0, rounds=2.0,
                                   candidates=1.0, threshold=3.5, stop_early=False)
    assert settings == {"negative_prompt": "", "seed": 7, "steps": 4, "rounds": 2, "candidates": 1,
                        "stop_threshold": None}
    assert mappers.settings_of("", 7, True, 4, 2, 1, 3.5, True)["stop_threshold"] == 3.5
    with pytest.raises(ValueError, match="Rounds"):
        mappers.settings_of("", 0, False, 4, None, 1, 3.5, True)


def test_every_handler_takes_the_request_by_name(service, panels):
    handlers = StudioHandlers(service, panels)
    public = [name for name, _ in inspect.getmembers(handlers, inspect.ismethod) if not name.startswith("_")]
    expected = {"create", "edit", "submit", "skip", "back", "undo", "pick_left", "pick_right", "pick_tie", "skip_pair",
                "undo_pick", "next_critique", "next_pair", "agreement", "load", "open"}
    assert expected <= set(public)
    for name in public:
        parameters = inspect.signature(getattr(handlers, name)).parameters
        assert "request" in parameters, name
        assert parameters["request"].annotation in (gr.Request, "gr.Request"), name
        assert all(p.kind is not p.VAR_POSITIONAL for p in parameters.values()), name


@pytest.mark.parametrize("make_view, keys", [
    (t2i_view, ["text_faithfulness", "physical_quality", "text_rendering"]),
    (edit_view, ["text_faithfulness", "image_faithfulness", "physical_quality", "text_rendering"]),
])
def test_submit_stores_the_signed_in_annotators_verdicts(service, panels, make_view, keys):
    make_view(service)
    handlers = StudioHandlers(service, panels)
    panel = panels.annotate
    shown = handlers.next_critique(None, request=signed_in("carol"))
    loaded = shown[panel.loaded]
    assert loaded["keys"] == keys
    form = {panel.loaded: loaded, panel.trail: shown[panel.trail]}
    for i, dim in enumerate(panel.dims):
        form.update({dim.verdict: "reject" if i == 1 else "accept", dim.comment: f"c{i}", dim.score: None})
    after = handlers.submit(form, request=signed_in("carol"))
    with service.sessions() as db:
        saved = list(db.scalars(select(Annotation).where(Annotation.critique_id == loaded["id"])))
    assert {(a.annotator_id, a.dimension, a.verdict.value) for a in saved} == {
        ("carol", key, "reject" if i == 1 else "accept") for i, key in enumerate(keys)}
    assert after[panel.loaded] is None or after[panel.loaded]["id"] != loaded["id"]
    assert after[panel.trail]["history"] == [loaded["id"]] and after[panel.note].startswith("Saved")


def test_an_anonymous_submit_is_refused_with_the_sign_in_message(service, panels):
    t2i_view(service)
    handlers = StudioHandlers(service, panels)
    loaded = handlers.next_critique(None, request=signed_in("carol"))[panels.annotate.loaded]
    form = {panels.annotate.loaded: loaded, panels.annotate.dims[0].verdict: "accept"}
    with pytest.raises(gr.Error, match="Sign in"):
        handlers.submit(form, request=signed_in(None))


def test_picks_are_recorded_for_the_signed_in_user(service, panels):
    t2i_view(service)
    handlers = StudioHandlers(service, panels)
    shown = handlers.next_pair(None, request=signed_in("carol"))
    pair = shown[panels.pair.pair]
    handlers.pick_right(pair, shown[panels.pair.trail], request=signed_in("carol"))
    with service.sessions() as db:
        judged = [(j.candidate_a_id, j.candidate_b_id, j.preference, j.judge_id, j.left_candidate_id)
                  for j in db.scalars(select(PairJudgement))]
    assert judged == [(pair["left"], pair["right"], "B", "carol", pair["left"])]


@pytest.mark.parametrize("make_view, tab", [(t2i_view, "create"), (edit_view, "edit")])
def test_open_shows_a_session_in_its_own_tab(service, panels, make_view, tab):
    view = make_view(service)
    shown = StudioHandlers(service, panels).open(f" {view.session_id} ", request=signed_in("alice"))
    panel, other = (panels.create, panels.edit) if tab == "create" else (panels.edit, panels.create)
    assert shown[panel.session] == view.session_id and len(shown[panel.gallery]) == len(view.rounds)
    assert not set(shown) & set(other.outputs)
    assert (panels.slider in shown) is (tab == "edit")
    assert shown[panels.tabs].selected == tab


def test_another_user_cannot_open_it(service, panels):
    """Another user's session gets the same answer as one that does not exist (nothing is revealed)."""
    view = t2i_view(service)
    handlers = StudioHandlers(service, panels)
    with pytest.raises(gr.Error, match="not in your sessions list") as theirs:
        handlers.open(view.session_id, request=signed_in("bob"))
    with pytest.raises(gr.Error) as missing:
        handlers.open("0" * 32, request=signed_in("bob"))
    assert str(theirs.value) == str(missing.value)  # no probing whether an id exists
    assert view.session_id not in str(theirs.value)  # the message names what the user sees, not an id


def test_delete_refreshes_the_table_and_clears_the_id(service, panels):
    view = t2i_view(service)
    handlers = StudioHandlers(service, panels)
    listed = handlers.sessions("fox", request=signed_in("alice"))[panels.table]
    assert list(listed["id"]) == [view.session_id]
    after = handlers.delete(view.session_id, "fox", request=signed_in("alice"))
    assert after[panels.chosen] == "" and after[panels.table].empty


@pytest.mark.parametrize("name, who, annotate_tab, sessions_tab", [
    ("carol", "Signed in as **carol** (annotator)", True, True),
    ("alice", "Signed in as **alice** (designer)", False, True),
    (None, "Sign in to use the studio.", False, False),
])
def test_load_shows_who_and_the_tabs_their_role_may_see(service, panels, name, who, annotate_tab, sessions_tab):
    shown = StudioHandlers(service, panels).load(request=signed_in(name))
    assert shown[panels.who] == who
    assert shown[panels.annotate_tab].visible is annotate_tab and shown[panels.sessions_tab].visible is sessions_tab
    assert shown[panels.export_group].visible is annotate_tab  # the export panel: reviewers only, hidden


@pytest.mark.parametrize("name, shown", [("root", True), ("carol", False), ("alice", False), (None, False)])
def test_the_purge_panel_is_shown_to_admins_only(service, panels, name, shown):
    assert StudioHandlers(service, panels).load(request=signed_in(name))[panels.purge.group].visible is shown


def test_an_admin_is_asked_what_a_purge_removes_then_the_list_refreshes(service, panels):
    view = t2i_view(service)
    handlers = StudioHandlers(service, panels)
    critique_id = handlers.next_critique(None, request=signed_in("carol"))[panels.annotate.loaded]["id"]
    service.annotate("carol", critique_id, {"text_faithfulness": {"verdict": "accept"}})
    service.delete_session("alice", view.session_id)  # hidden: carol's annotation hangs on it
    assert handlers.hidden(request=signed_in("carol")) == {}  # a reviewer's tab select sets nothing
    listed = handlers.hidden(request=signed_in("root"))
    table = listed[panels.purge.table]
    assert list(table["id"]) == [view.session_id] and list(table["owner"]) == ["alice"]
    assert list(table["annotations"]) == [1] and listed[panels.purge.confirm_row].visible is False
    with pytest.raises(gr.Error, match="Only an admin"):
        handlers.ask_purge(view.session_id, request=signed_in("carol"))
    asked = handlers.ask_purge(view.session_id, request=signed_in("root"))
    assert asked[panels.purge.confirm_row].visible is True
    text = asked[panels.purge.confirm_text]
    assert text.startswith("**Purge “a red fox in the snow” (alice's session): its 2 rounds")
    assert "1 annotation and 0 A/B picks made on it (by carol)" in text
    after = handlers.purge(view.session_id, request=signed_in("root"))
    assert after[panels.purge.table].empty and after[panels.purge.chosen] == ""
    assert after[panels.purge.note] == "No session is hidden by its owner: nothing to purge."
    with pytest.raises(gr.Error, match="no longer stored"):
        handlers.purge(view.session_id, request=signed_in("root"))


def test_a_designer_gets_the_role_message_from_the_queue(service, panels):
    with pytest.raises(gr.Error, match="annotator or admin role"):
        StudioHandlers(service, panels).next_critique(None, request=signed_in("alice"))


def test_app_py_is_layout_and_wiring_only():
    source = (ROOT / "app.py").read_text(encoding="utf-8")
    assert "gr.skip()" not in source
    build_app = next(node for node in ast.walk(ast.parse(source))
                     if isinstance(node, ast.FunctionDef) and node.name == "build_app")
    nested = [node.name for node in ast.walk(build_app)
              if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node is not build_app]
    assert nested == [], f"handlers defined inside build_app: {nested}"


def test_agreement_text_shows_kappa_bias_and_for_admins_the_queue():
    found = {"critiques": {"items": [{"item": [1, "text_faithfulness"], "judgements": 2, "majority": None,
                                      "agreement": 0.5}],
                           "reviewer_pairs": [{"first": "carol", "second": "dave", "items": 3, "observed": 2 / 3,
                                               "kappa": 0.25}]},
             "pairs": {"items": [], "reviewer_pairs": []},
             "position_bias": {"carol": {"left": 3, "picks": 4, "left_share": 0.75}}}
    queue = [{"kind": "critiques", "item": [1, "text_faithfulness"], "judgements": 2, "agreement": 0.5,
              "label": "“a fox” · round 1 · #1 · Text Faithfulness"}]
    text = mappers.agreement_text(found, queue)
    assert "carol & dave: 3 shared, 67% same, Cohen's κ 0.25" in text and "carol 75% of 4" in text
    assert "- “a fox” · round 1 · #1 · Text Faithfulness: 2 judgements, 50% agree" in text
    assert "Disagreements" not in mappers.agreement_text(found, None)
