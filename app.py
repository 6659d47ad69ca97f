"""RationalRewards Studio: the Gradio app (also the Hugging Face Spaces entry point).

    python app.py [--host 127.0.0.1] [--port 7860] [--preset auto] [--database-url URL] [--critic-url URL] [--low-memory]

Layout and event wiring only; every handler lives in rr_core.service
(views in rr_core.run_view, users in rr_core.auth) and returns plain values.
Every step is also a named API endpoint for gradio_client (docs/api.md). GPU work shares one queue
(concurrency_id "gpu", one at a time); critiques by a remote critic are not limited.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from rr_core.errors import RRError
from rr_core.images import data_url, load_image
from rr_core.presets import PRESETS
from rr_core.rubric import dimensions
from studio.container import Services as StudioService
from studio.container import create_services as create_service
from studio.exports import FORMATS
from studio.users import OAUTH_PREFIX, AuthSettings
from studio.views import RunView, gallery_items, history_rows, prompt_diff, scores_html

logger = logging.getLogger("app")

ASSETS = Path(__file__).resolve().parent / "assets"
MAX_DIMENSIONS = max(len(dimensions(task)) for task in ("t2i", "edit"))
TOKEN_REFRESH_S = 0.25
try:  # ZeroGPU on Spaces: wrap GPU work; elsewhere a no-op.
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn: Callable) -> Callable:
        return fn


def username_of(request: gr.Request | None) -> str | None:
    """Who is calling: the password-auth user, else the Hugging Face OAuth user; never a parameter.

    OAuth users are namespaced as "hf:<name>" so a Hugging Face account can never act as the
    password user of the same name (password usernames cannot contain ":").
    """
    if request is None:
        return None
    if request.username:
        return request.username
    try:
        info = request.session.get("oauth_info") or {}
    except (AttributeError, AssertionError):
        return None
    name = (info.get("userinfo") or {}).get("preferred_username")
    return f"{OAUTH_PREFIX}{name}" if name else None


def _shown_errors(fn: Callable) -> Callable:
    """Turn expected errors (bad input, access, limits) into gr.Error with the specific message."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except (RRError, ValueError, LookupError, PermissionError) as exc:
                raise gr.Error(str(exc)) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RRError, ValueError, LookupError, PermissionError) as exc:
            raise gr.Error(str(exc)) from exc
    return wrapper


def launch_kwargs(service: StudioService) -> dict[str, Any]:
    """What launch() needs besides host and port (Gradio 6 takes css, js and theme here)."""
    return {"css": (ASSETS / "app.css").read_text(encoding="utf-8"),
            "js": (ASSETS / "app.js").read_text(encoding="utf-8"),
            "theme": gr.themes.Soft(), "allowed_paths": [str(service.exports_dir)],
            "max_file_size": "50mb", "auth": service.auth.check if service.auth.users else None}


def build_app(service: StudioService) -> gr.Blocks:
    """The whole UI and API in one Blocks; `service` holds the models and the database."""
    gpu_limits = {"concurrency_limit": 1, "concurrency_id": "gpu"}
    critic_limits = {"concurrency_limit": None} if service.remote_critic else gpu_limits

    # --- view -> component values -------------------------------------------------------------

    def result_values(view: RunView, light: bool = False) -> list[Any]:
        """Values for a results panel (see `results_panel`); `light` only refreshes streaming text."""
        latest = view.latest
        critique = latest.critique if latest is not None else None
        if light:
            return [gr.skip()] * 2 + [view.live_text] + [gr.skip()] * 8
        status = view.status + "".join(f"\n\n⚠️ {m}" for m in view.messages)
        if len(view.rounds) > 1:  # refined prompts drive the generator; the scores stay comparable
            status += f"\n\nEvery round is scored against your request: “{view.request}”."
        summary = "" if critique is None else (f"**Summary.** {critique.summary}" if critique.summary else "")
        proposal = view.next_prompt if view.done or (view.rounds and view.rounds[-1].done) else gr.skip()
        diff = prompt_diff(view.previous_prompt, view.next_prompt) if view.rounds else []
        # An empty frame would fix the plot's encodings on no data (Gradio then draws no lines for
        # later frames), so "no history yet" is sent as None.
        rows = history_rows(view)
        history = pd.DataFrame(rows, columns=["round", "series", "value"]).astype(
            {"round": int, "series": str, "value": float}) if rows else None
        best = view.best_candidate or latest
        return [view.session_id, status, view.live_text or (critique.raw_text if critique else ""),
                scores_html(critique), summary, proposal, diff, history, gallery_items(view),
                gr.update(visible=view.parse_failed),
                best.round_id if best is not None and best.round_id is not None else None]

    def stream(views: Iterator[RunView], extra: Callable[[RunView], list[Any]] = lambda v: []) -> Iterator[list]:
        last = 0.0
        previous_rounds = -1
        for view in views:
            now = time.monotonic()
            structural = view.done or len(view.rounds) != previous_rounds or not view.live_text \
                or (view.rounds and view.rounds[-1].candidates and view.rounds[-1].candidates[-1].critique)
            if not structural and now - last < TOKEN_REFRESH_S:
                continue
            light = not structural
            previous_rounds = len(view.rounds)
            last = now
            yield result_values(view, light) + ([gr.skip()] * len(extra(view)) if light else extra(view))

    def results_panel(prefix: str) -> dict[str, Any]:
        c: dict[str, Any] = {}
        c["status"] = gr.Markdown(elem_id=f"{prefix}-status")
        with gr.Row():
            with gr.Column(scale=3):
                c["gallery"] = gr.Gallery(label="Rounds (★ = best)", columns=4, height=320, elem_id=f"{prefix}-gallery")
                c["plot"] = gr.LinePlot(x="round", y="value", color="series", y_lim=[0.8, 4.2], height=280,
                                        label="Scores and reward by round", elem_id=f"{prefix}-plot")
            with gr.Column(scale=2):
                c["scores"] = gr.HTML(elem_id=f"{prefix}-scores")
                c["summary"] = gr.Markdown(elem_id=f"{prefix}-summary")
                c["retry"] = gr.Button("Retry the critique", visible=False, elem_id=f"{prefix}-retry")
        c["refined"] = gr.Textbox(label="Refined prompt (editable: the next round uses it)", lines=3,
                                  elem_id=f"{prefix}-refined")
        c["diff"] = gr.HighlightedText(label="Change from the previous prompt", color_map={"+": "green", "-": "red"},
                                       combine_adjacent=True, elem_id=f"{prefix}-diff")
        with gr.Row():
            c["more"] = gr.Button("Run one more round", elem_id=f"{prefix}-more")
            c["stop"] = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop")
            c["keep"] = gr.Button("Keep this image", elem_id=f"{prefix}-keep")
        with gr.Accordion("Critique as the critic writes it", open=True):
            c["raw"] = gr.Textbox(lines=8, max_lines=20, show_label=False, elem_id=f"{prefix}-raw")
        c["session"] = gr.State("")
        c["round_id"] = gr.State(None)
        c["outputs"] = [c["session"], c["status"], c["raw"], c["scores"], c["summary"], c["refined"], c["diff"],
                        c["plot"], c["gallery"], c["retry"], c["round_id"]]
        return c

    # --- handlers: resolve the user, call the service, map to components -------------------------

    def settings_of(negative: str, seed: float, randomize: bool, steps: float, rounds: float, candidates: float,
                    threshold: float, stop_early: bool) -> dict[str, Any]:
        seed = random.randint(0, 2**31 - 1) if randomize else int(seed or 0)
        return {"negative_prompt": negative or "", "seed": seed, "steps": int(steps), "rounds": int(rounds),
                "candidates": int(candidates), "stop_threshold": float(threshold) if stop_early else None}

    @gpu
    @_shown_errors
    def ui_create(prompt: str, negative: str, seed: float, randomize: bool, steps: float, rounds: float,
                  candidates: float, threshold: float, stop_early: bool, request: gr.Request) -> Iterator[list]:
        settings = settings_of(negative, seed, randomize, steps, rounds, candidates, threshold, stop_early)
        views = service.run_loop(username_of(request), prompt, settings)
        yield from stream(views, lambda v: [settings["seed"]])

    @gpu
    @_shown_errors
    def ui_edit(source: str | None, instruction: str, seed: float, randomize: bool, steps: float, rounds: float,
                threshold: float, stop_early: bool, request: gr.Request) -> Iterator[list]:
        if not source:
            raise gr.Error("Upload a source image to edit (drag, paste, or send one from Create).")
        image = load_image(source)
        settings = settings_of("", seed, randomize, steps, rounds, 1, threshold, stop_early)
        views = service.run_loop(username_of(request), instruction, settings, source_image=image)
        yield from stream(views, lambda v: [settings["seed"], slider_value(v)])

    def slider_value(view: RunView) -> Any:
        latest = view.best_candidate or view.latest
        if view.source_image is None or latest is None:
            return gr.skip()
        return (view.source_image, latest.image)

    @gpu
    @_shown_errors
    def ui_more(session_id: str, prompt: str, request: gr.Request) -> Iterator[list]:
        if not session_id:
            raise gr.Error("Run a session first (or open one from Sessions).")
        yield from stream(service.continue_session(username_of(request), session_id, prompt))

    @gpu
    @_shown_errors
    def ui_more_edit(session_id: str, prompt: str, request: gr.Request) -> Iterator[list]:
        if not session_id:
            raise gr.Error("Run a session first (or open one from Sessions).")
        yield from stream(service.continue_session(username_of(request), session_id, prompt),
                          lambda v: [slider_value(v)])

    @gpu
    @_shown_errors
    def ui_retry(round_id: int | None, request: gr.Request) -> list:
        if round_id is None:
            raise gr.Error("There is no stored image to critique again.")
        return result_values(service.retry_critique(username_of(request), round_id))

    @_shown_errors
    def ui_stop(request: gr.Request) -> None:
        gr.Info(service.stop(username_of(request)))

    @_shown_errors
    def ui_keep(round_id: int | None, request: gr.Request) -> None:
        if round_id is None:
            raise gr.Error("No image to keep yet.")
        gr.Info(service.keep(username_of(request), round_id))

    def ui_select(session_id: str, evt: gr.SelectData, request: gr.Request) -> Any:
        view = service.open_session(username_of(request), session_id) if session_id else None
        flat = [c for r in view.rounds for c in r.candidates] if view else []
        return flat[evt.index].round_id if 0 <= evt.index < len(flat) else None

    @_shown_errors
    def ui_to_edit(round_id: int | None, request: gr.Request) -> list:
        if round_id is None:
            raise gr.Error("No image yet: run a round first.")
        return [service.round_image(username_of(request), round_id), gr.Tabs(selected="edit")]

    # Sessions
    @_shown_errors
    def ui_sessions(search: str, request: gr.Request) -> pd.DataFrame:
        rows = service.list_sessions(username_of(request), search)
        return pd.DataFrame(rows, columns=["id", "title", "task", "rounds", "created"])

    def ui_pick_session(table: pd.DataFrame, evt: gr.SelectData) -> str:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return str(table.iloc[row]["id"]) if table is not None and 0 <= row < len(table) else ""

    @_shown_errors
    def ui_open(session_id: str, request: gr.Request) -> list:
        view = service.open_session(username_of(request), session_id.strip())
        values = result_values(view)
        if view.task == "edit":
            return [gr.skip()] * 11 + values + [slider_value(view), gr.Tabs(selected="edit")]
        return values + [gr.skip()] * 12 + [gr.Tabs(selected="create")]

    @_shown_errors
    def ui_delete(session_id: str, search: str, request: gr.Request) -> list:
        gr.Info(service.delete_session(username_of(request), session_id.strip()))
        return [ui_sessions(search, request), ""]

    @_shown_errors
    def ui_export(fmt: str, parquet: bool, request: gr.Request) -> list:
        result = service.export(username_of(request), fmt, parquet)
        return [result["file"], f"Wrote **{result['count']}** {fmt} record(s).", result["command"],
                counts_text(request)]

    def counts_text(request: gr.Request) -> str:
        stats = service.stats(username_of(request))
        return (f"Preference pairs: **{stats['preference_pairs']}** · annotated critiques: "
                f"**{stats['annotated_critiques']}** · your sessions: **{stats['my_sessions']}**")

    # Annotate
    def critique_values(item: dict[str, Any] | None) -> list:
        if item is None:
            blank = [gr.update(visible=False), "", gr.update(value=None), "", None]
            return [None, "Nothing left to review. 🎉", None, gr.update(value=None, visible=False), "", ""] + \
                blank * MAX_DIMENSIONS
        progress = f"Reviewed **{item['progress']['done']}** · in the queue: **{item['progress']['remaining']}**"
        loaded = {"id": item["critique_id"], "keys": [row["key"] for row in item["scores"]]}
        values = [loaded, progress, item["image"],
                  gr.update(value=item["source_image"], visible=item["source_image"] is not None),
                  f"**Request:** {item['request']}\n\n**Summary:** {item['summary'] or '—'}"
                  + ("" if item["status"] != "failed" else "\n\n⚠️ This critique did not parse: judge its raw text."),
                  item["raw_text"]]
        for i in range(MAX_DIMENSIONS):
            if i < len(item["scores"]):
                row = item["scores"][i]
                text = f"**{row['heading']}** — {row['description']}\n\n{row['justification'] or ''}"
                values += [gr.update(visible=True), text, gr.update(value=None), "", row["score"]]
            else:
                values += [gr.update(visible=False), "", gr.update(value=None), "", None]
        return values

    @_shown_errors
    def ui_next_critique(request: gr.Request) -> list:
        return critique_values(service.next_critique(username_of(request)))

    @_shown_errors
    def ui_submit(loaded: dict | None, *fields_and_request: Any) -> list:
        *fields, request = fields_and_request
        if not loaded:
            raise gr.Error("No critique loaded: open the queue first.")
        verdicts = {}
        for i, key in enumerate(loaded["keys"]):
            verdict, comment, score = fields[3 * i: 3 * i + 3]
            if verdict:
                verdicts[key] = {"verdict": verdict, "comment": comment or "", "score": score}
        gr.Info(service.annotate(username_of(request), loaded["id"], verdicts))
        return critique_values(service.next_critique(username_of(request)))

    def pair_values(pair: dict[str, Any] | None) -> list:
        if pair is None:
            return [None, None, None, "No pairs left to compare."]
        return [pair["image_a"], pair["image_b"], [pair["round_a"], pair["round_b"]],
                f"**Request:** {pair['request']}\n\nA: {pair['prompt_a']}\n\nB: {pair['prompt_b']}"]

    @_shown_errors
    def ui_next_pair(request: gr.Request) -> list:
        return pair_values(service.next_pair(username_of(request)))

    def ui_pick(preference: str) -> Callable:
        @_shown_errors
        def pick(pair: list[int] | None, request: gr.Request) -> list:
            if not pair:
                raise gr.Error("No pair loaded.")
            gr.Info(service.pick_pair(username_of(request), pair[0], pair[1], preference))
            return pair_values(service.next_pair(username_of(request)))
        return pick

    def ui_load(request: gr.Request) -> list:
        try:
            user = username_of(request)
            role = service.role(user)
            who = f"Signed in as **{service.user(user)}** ({role.value})"
        except RRError as exc:
            return [str(exc), service.health(), gr.Tab(visible=False), gr.Tab(visible=False)]
        reviewer = role.value in ("annotator", "admin")
        return [who, service.health(), gr.Tab(visible=reviewer), gr.Tab(visible=True)]

    # --- layout ----------------------------------------------------------------------------------

    with gr.Blocks(title="RationalRewards Studio") as demo:
        with gr.Row(elem_id="rr-header"):
            gr.Markdown("# RationalRewards Studio\nGenerate → critique → refine, with per-dimension scores.")
            who = gr.Markdown(elem_id="rr-user")
            if service.auth.oauth:
                gr.LoginButton()
        health = gr.Markdown(service.health(), elem_id="rr-health")
        with gr.Tabs(elem_id="rr-tabs") as tabs:
            with gr.Tab("Create", id="create", elem_id="tab-create"):
                with gr.Row():
                    with gr.Column(scale=3):
                        prompt = gr.Textbox(label="Prompt", lines=2, placeholder="a red fox in the snow at dawn",
                                            elem_id="create-prompt")
                        negative = gr.Textbox(label="Negative prompt (optional)", elem_id="create-negative")
                    with gr.Column(scale=2):
                        with gr.Row():
                            seed = gr.Number(label="Seed", value=0, precision=0, elem_id="create-seed")
                            randomize = gr.Checkbox(label="Randomize seed", value=False)
                        steps = gr.Slider(1, 50, value=4, step=1, label="Steps", elem_id="create-steps")
                        with gr.Row():
                            rounds = gr.Slider(1, 10, value=3, step=1, label="Rounds", elem_id="create-rounds")
                            candidates = gr.Slider(1, 4, value=1, step=1, label="Candidates per round")
                        with gr.Row():
                            threshold = gr.Slider(1, 4, value=3.5, step=0.1, label="Stop threshold", scale=3)
                            stop_early = gr.Checkbox(label="Stop early when every score reaches it", value=True,
                                                     scale=2, elem_id="create-stop-early")
                with gr.Row():
                    run = gr.Button("Generate, critique and refine", variant="primary", elem_id="create-run")
                    to_edit = gr.Button("Edit this image →", elem_id="create-to-edit")
                create = results_panel("create")
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                with gr.Row():
                    source = gr.Image(label="Source image (drag, paste or send from Create)", type="filepath",
                                      sources=["upload", "clipboard"], height=280, elem_id="edit-source")
                    slider = gr.ImageSlider(label="Before / after", height=280, elem_id="edit-slider")
                with gr.Row():
                    instruction = gr.Textbox(label="Instruction", lines=2, scale=3,
                                             placeholder="make the sky purple", elem_id="edit-instruction")
                    with gr.Column(scale=2):
                        with gr.Row():
                            edit_seed = gr.Number(label="Seed", value=0, precision=0)
                            edit_randomize = gr.Checkbox(label="Randomize seed", value=False)
                        edit_steps = gr.Slider(1, 50, value=4, step=1, label="Steps", elem_id="edit-steps")
                        edit_rounds = gr.Slider(1, 10, value=2, step=1, label="Rounds", elem_id="edit-rounds")
                        with gr.Row():
                            edit_threshold = gr.Slider(1, 4, value=3.5, step=0.1, label="Stop threshold", scale=3)
                            edit_stop_early = gr.Checkbox(label="Stop early when every score reaches it", value=True,
                                                          scale=2, elem_id="edit-stop-early")
                edit_run = gr.Button("Edit, critique and refine", variant="primary", elem_id="edit-run")
                edit = results_panel("edit")
            with gr.Tab("Annotate", id="annotate", elem_id="tab-annotate") as annotate_tab:
                with gr.Column(elem_id="annotate-panel"):
                    gr.Markdown("Keys: **a**/**r** accept/reject the current dimension, **Enter** submit and "
                                "advance; **1**/**2**/**3** pick A, B or tie.")
                    progress = gr.Markdown(elem_id="annotate-progress")
                    critique_id = gr.State(None)
                    with gr.Row():
                        ann_image = gr.Image(label="Image", interactive=False, height=260, elem_id="annotate-image")
                        ann_source = gr.Image(label="Source", interactive=False, height=260, visible=False)
                        ann_request = gr.Markdown(elem_id="annotate-request")
                    with gr.Accordion("The critique as written", open=False):
                        ann_raw = gr.Textbox(lines=6, max_lines=12, show_label=False, elem_id="annotate-raw")
                    dim_fields, dim_rows, dim_outputs = [], [], []
                    for i in range(MAX_DIMENSIONS):
                        with gr.Row(visible=False, elem_classes=["rr-dim"], elem_id=f"dim-{i}") as row:
                            text = gr.Markdown()
                            verdict = gr.Radio(["accept", "reject", "correct"], label="Verdict",
                                               elem_id=f"verdict-{i}")
                            comment = gr.Textbox(label="Comment", elem_id=f"comment-{i}")
                            corrected = gr.Number(label="Corrected score (1-4)", minimum=1, maximum=4,
                                                  elem_id=f"score-{i}")
                        dim_rows.append(row)
                        dim_fields += [verdict, comment, corrected]
                        dim_outputs += [row, text, verdict, comment, corrected]
                    with gr.Row():
                        submit = gr.Button("Submit and next (Enter)", variant="primary", elem_id="annotate-submit")
                        skip_to_next = gr.Button("Load queue", elem_id="annotate-load")
                    gr.Markdown("### Which image is better for the request?")
                    pair = gr.State(None)
                    pair_text = gr.Markdown(elem_id="pair-request")
                    with gr.Row():
                        image_a = gr.Image(label="A", interactive=False, height=220, elem_id="pair-a")
                        image_b = gr.Image(label="B", interactive=False, height=220, elem_id="pair-b")
                    with gr.Row():
                        pick_a = gr.Button("A is better (1)", elem_id="pick-a")
                        pick_b = gr.Button("B is better (2)", elem_id="pick-b")
                        pick_tie = gr.Button("Tie (3)", elem_id="pick-tie")
            with gr.Tab("Sessions", id="sessions", elem_id="tab-sessions") as sessions_tab:
                with gr.Row():
                    search = gr.Textbox(label="Search your sessions by prompt", scale=4, elem_id="sessions-search")
                    search_btn = gr.Button("Search", scale=1, elem_id="sessions-search-btn")
                table = gr.Dataframe(headers=["id", "title", "task", "rounds", "created"], interactive=False,
                                     elem_id="sessions-table")
                with gr.Row():
                    chosen = gr.Textbox(label="Session id (click a row)", scale=3, elem_id="sessions-id")
                    open_btn = gr.Button("Open and continue", scale=1, elem_id="sessions-open")
                    delete_btn = gr.Button("Delete", variant="stop", scale=1, elem_id="sessions-delete")
                gr.Markdown("### Export training data (annotators and admins)")
                counts = gr.Markdown(elem_id="export-counts")
                with gr.Row():
                    fmt = gr.Dropdown(list(FORMATS), value="pairs", label="Format", elem_id="export-format")
                    parquet = gr.Checkbox(label="Parquet (default JSONL)", value=False)
                    export_btn = gr.Button("Export", elem_id="export-run")
                export_file = gr.File(label="Exported file", elem_id="export-file")
                export_note = gr.Markdown(elem_id="export-note")
                export_cmd = gr.Code(label="Same export from the command line (for larger data)", language="shell",
                                     elem_id="export-command")

        # --- wiring (UI events are private; the documented API is below) -------------------------
        ui = {"api_visibility": "private"}
        run_event = run.click(ui_create, [prompt, negative, seed, randomize, steps, rounds, candidates, threshold, stop_early],
                              create["outputs"] + [seed], api_name="ui_create", **gpu_limits, **ui)
        prompt.submit(ui_create, [prompt, negative, seed, randomize, steps, rounds, candidates, threshold, stop_early],
                      create["outputs"] + [seed], api_name="ui_create_submit", **gpu_limits, **ui)
        edit_event = edit_run.click(ui_edit, [source, instruction, edit_seed, edit_randomize, edit_steps, edit_rounds,
                                              edit_threshold, edit_stop_early], edit["outputs"] + [edit_seed, slider],
                                    api_name="ui_edit", **gpu_limits, **ui)
        create["more"].click(ui_more, [create["session"], create["refined"]], create["outputs"],
                             api_name="ui_more", **gpu_limits, **ui)
        edit["more"].click(ui_more_edit, [edit["session"], edit["refined"]], edit["outputs"] + [slider],
                           api_name="ui_more_edit", **gpu_limits, **ui)
        for panel, name in ((create, "create"), (edit, "edit")):
            panel["stop"].click(ui_stop, None, None, api_name=f"ui_stop_{name}", concurrency_limit=None, **ui)
            panel["keep"].click(ui_keep, panel["round_id"], None, api_name=f"ui_keep_{name}", **ui)
            panel["retry"].click(ui_retry, panel["round_id"], panel["outputs"], api_name=f"ui_retry_{name}",
                                 **critic_limits, **ui)
            panel["gallery"].select(ui_select, panel["session"], panel["round_id"], api_name=f"ui_select_{name}",
                                    **ui)
        to_edit.click(ui_to_edit, create["round_id"], [source, tabs], api_name="ui_to_edit", **ui)
        search_btn.click(ui_sessions, search, table, api_name="ui_sessions", **ui)
        search.submit(ui_sessions, search, table, api_name="ui_sessions_submit", **ui)
        sessions_tab.select(ui_sessions, search, table, api_name="ui_sessions_tab", **ui) \
            .then(counts_text, None, counts, api_name="ui_counts", **ui)
        table.select(ui_pick_session, table, chosen, api_name="ui_pick_session", **ui)
        open_btn.click(ui_open, chosen, create["outputs"] + edit["outputs"] + [slider, tabs], api_name="ui_open",
                       **ui)
        delete_btn.click(ui_delete, [chosen, search], [table, chosen], api_name="ui_delete", **ui)
        export_btn.click(ui_export, [fmt, parquet], [export_file, export_note, export_cmd, counts],
                         api_name="ui_export", **ui)
        critique_outputs = [critique_id, progress, ann_image, ann_source, ann_request, ann_raw] + dim_outputs
        annotate_tab.select(ui_next_critique, None, critique_outputs, api_name="ui_queue", **ui) \
            .then(ui_next_pair, None, [image_a, image_b, pair, pair_text], api_name="ui_pair", **ui)
        skip_to_next.click(ui_next_critique, None, critique_outputs, api_name="ui_queue_load", **ui) \
            .then(ui_next_pair, None, [image_a, image_b, pair, pair_text], api_name="ui_pair_load", **ui)
        submit.click(ui_submit, [critique_id] + dim_fields, critique_outputs, api_name="ui_annotate", **ui)
        for button, preference in ((pick_a, "A"), (pick_b, "B"), (pick_tie, "tie")):
            button.click(ui_pick(preference), pair, [image_a, image_b, pair, pair_text],
                         api_name=f"ui_pick_{preference}", **ui)
        demo.load(ui_load, None, [who, health, annotate_tab, sessions_tab], api_name="ui_load", **ui)
        del run_event, edit_event

        # --- the documented API (docs/api.md) ---------------------------------------------------
        register_api(service, gpu_limits, critic_limits)
    return demo


def register_api(service: StudioService, gpu_limits: dict[str, Any], critic_limits: dict[str, Any]) -> None:
    """Named endpoints with plain JSON in and out; images travel as PNG data URLs."""

    @gpu
    @_shown_errors
    def generate(prompt: str, negative_prompt: str = "", seed: int = 0, steps: int = 0, candidates: int = 1,
                 source_image: str = "", request: gr.Request = None) -> dict:
        """Generate images for a prompt (or edit source_image) without critiquing them; stored as a session."""
        settings = {"negative_prompt": negative_prompt, "seed": seed, "steps": steps or None, "candidates": candidates}
        return service.generate(username_of(request), prompt, settings, source_image or None).to_dict(images=True)

    @gpu
    @_shown_errors
    def critique(prompt: str, image: str, source_image: str = "", request: gr.Request = None) -> dict:
        """Critique an image (a data URL) for a request; with source_image, as an edit. Stored as a session."""
        return service.critique(username_of(request), prompt, image, source_image or None).to_dict()

    @gpu
    @_shown_errors
    def run_loop(prompt: str, rounds: int = 3, candidates: int = 1, steps: int = 0, seed: int = 0,
                 stop_threshold: float = 3.5, negative_prompt: str = "", source_image: str = "",
                 request: gr.Request = None) -> Iterator[dict]:
        """Run the Generate-Critique-Refine loop; streams progress, the last message has the images.
        stop_threshold 0 means never stop early."""
        settings = {"rounds": rounds, "candidates": candidates, "steps": steps or None, "seed": seed,
                    "stop_threshold": stop_threshold or None, "negative_prompt": negative_prompt}
        yield from api_stream(service.run_loop(username_of(request), prompt, settings, source_image or None))

    @gpu
    @_shown_errors
    def refine_round(session_id: str, prompt: str = "", request: gr.Request = None) -> Iterator[dict]:
        """Run one more round of a session with `prompt` (default: the last refined prompt)."""
        yield from api_stream(service.continue_session(username_of(request), session_id, prompt or None))

    @_shown_errors
    def session(session_id: str, images: bool = False, request: gr.Request = None) -> dict:
        """One of your sessions, with every round, critique and (optionally) image."""
        return service.open_session(username_of(request), session_id).to_dict(images=images)

    @_shown_errors
    def sessions(search: str = "", request: gr.Request = None) -> list:
        """Your sessions, newest first, optionally filtered by prompt text."""
        return service.list_sessions(username_of(request), search)

    @_shown_errors
    def delete_session(session_id: str, request: gr.Request = None) -> str:
        """Delete one of your sessions."""
        return service.delete_session(username_of(request), session_id)

    @_shown_errors
    def keep(round_id: int, request: gr.Request = None) -> str:
        """Mark a round's image as kept."""
        return service.keep(username_of(request), round_id)

    @_shown_errors
    def stop(request: gr.Request = None) -> str:
        """Stop your runs after their current step."""
        return service.stop(username_of(request))

    @_shown_errors
    def annotation_queue(request: gr.Request = None) -> dict:
        """The next critique to review (annotators/admins); {} when the queue is empty."""
        item = service.next_critique(username_of(request))
        if item is None:
            return {}
        item["image"] = data_url(item["image"])
        item["source_image"] = data_url(item["source_image"]) if item["source_image"] is not None else None
        return item

    @_shown_errors
    def annotate(critique_id: int, verdicts: dict, request: gr.Request = None) -> str:
        """Verdicts per dimension: {"text_faithfulness": {"verdict": "accept"|"reject"|"correct",
        "score": 2.0, "comment": "..."}}."""
        return service.annotate(username_of(request), critique_id, verdicts)

    @_shown_errors
    def next_pair(request: gr.Request = None) -> dict:
        """Two rounds of one request you have not compared; {} when none are left."""
        pair = service.next_pair(username_of(request))
        if pair is None:
            return {}
        return {**pair, "image_a": data_url(pair["image_a"]), "image_b": data_url(pair["image_b"])}

    @_shown_errors
    def pick_pair(round_a: int, round_b: int, preference: str, request: gr.Request = None) -> str:
        """Record which image is better: "A", "B" or "tie"."""
        return service.pick_pair(username_of(request), round_a, round_b, preference)

    @_shown_errors
    def export(format: str = "pairs", parquet: bool = False, request: gr.Request = None) -> dict:
        """Write a training export on the server; returns its path, record count and the command line."""
        return service.export(username_of(request), format, parquet)

    @_shown_errors
    def stats(request: gr.Request = None) -> dict:
        """Counts of preference pairs and annotated critiques."""
        return service.stats(username_of(request))

    def health() -> str:
        """The preset, the models and whether they are loaded."""
        return service.health()

    for fn, limits in ((generate, gpu_limits), (critique, critic_limits), (run_loop, gpu_limits),
                       (refine_round, gpu_limits)):
        gr.api(fn, api_name=fn.__name__, **limits)
    for fn in (session, sessions, delete_session, keep, annotation_queue, annotate, next_pair, pick_pair, export,
               stats, health):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
    gr.api(stop, api_name="stop", concurrency_limit=None)


def api_stream(views: Iterator[RunView]) -> Iterator[dict]:
    """Progress without images while the run streams (at most every TOKEN_REFRESH_S for tokens), then
    the final view with its images."""
    last, view = 0.0, None
    for view in views:
        now = time.monotonic()
        if now - last >= TOKEN_REFRESH_S:
            last = now
            yield view.to_dict()
    if view is not None:
        yield view.to_dict(images=True)


def main(argv: list[str] | None = None) -> None:
    env = os.environ
    parser = argparse.ArgumentParser(description="RationalRewards Studio")
    parser.add_argument("--host", default=env.get("RR_HOST", "127.0.0.1" if not env.get("SPACE_ID") else "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env.get("RR_PORT", env.get("GRADIO_SERVER_PORT", "7860"))))
    parser.add_argument("--preset", choices=PRESETS, default=env.get("RR_PRESET", "auto"))
    parser.add_argument("--database-url", default=env.get("RR_DATABASE_URL") or None)
    parser.add_argument("--critic-url", default=env.get("RR_CRITIC_URL") or None)
    parser.add_argument("--low-memory", action="store_true", default=env.get("RR_LOW_MEMORY", "") in ("1", "true"))
    parser.add_argument("--auth", default=env.get("RR_AUTH", ""), help='"alice:pw:designer,bob:pw:annotator"')
    parser.add_argument("--max-runs-per-user", type=int, default=int(env.get("RR_MAX_RUNS_PER_USER", "2")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    auth = AuthSettings.from_env({**env, "RR_AUTH": args.auth})
    service = create_service(args.preset, database_url_text=args.database_url, critic_url=args.critic_url,
                             low_memory=args.low_memory, auth=auth, max_runs_per_user=args.max_runs_per_user)
    threading.Thread(target=service.warm_up, name="warm-up", daemon=True).start()
    demo = build_app(service)
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs(service))


if __name__ == "__main__":
    main()
