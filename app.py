"""RationalRewards Studio: the Gradio app (also the Hugging Face Spaces entry point).

    python app.py [--host 127.0.0.1] [--port 7860] [--preset auto] [--database-url URL] [--critic-url URL] [--low-memory]

Layout and event wiring only. Handlers live in ui.handlers (who acts comes from gr.Request; each
calls the service in studio and maps its result through ui.mappers to `{component: value}`);
the documented API endpoints in ui.api (docs/api.md). GPU work takes turns in studio.scheduling (one at
a time, round-robin between users, a per-user limit and a bounded queue); critiques by a remote
critic are not limited. ui.security guards Gradio's own routes and serves export downloads.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from studio.users import AuthSettings
from rr_core.presets import PRESETS, add_artefact_arguments, artefacts_from_args, uses_critic_server
from studio.container import Services, create_services
from studio.examples import ExampleCache
from studio.exports import FORMATS
from ui.api import register_api
from ui.handlers import StudioHandlers
from ui.examples import EXAMPLES_DIR, T2I_EXAMPLES, ExampleRuns, edit_examples
from ui.mappers import HIDDEN_COLUMN_WIDTHS, HIDDEN_COLUMNS, SESSION_COLUMN_WIDTHS, SESSION_COLUMNS, plan_text
from ui.panels import (RunForm, StudioUI, agreement_panel, annotate_panel, keys_html, pair_panel, purge_panel,
                       results_panel)
from ui.training_panel import training_tab, wire_training
from ui.security import app_kwargs
from studio.profile import PROFILES, plan_for
from ui import zerogpu
from ui.zerogpu import gpu

ASSETS = Path(__file__).resolve().parent / "assets"


def launch_kwargs(service: Services) -> dict[str, Any]:
    """What launch() needs besides host and port (Gradio 6 takes css, js and theme here). Gradio's file
    routes never serve the exports or the image store (exports go through ui.security's checked
    download route), and its run history is off; ui.security guards its queue routes."""
    return {"css": (ASSETS / "app.css").read_text(encoding="utf-8"),
            "js": (ASSETS / "app.js").read_text(encoding="utf-8"),
            "theme": gr.themes.Soft(), "max_file_size": "50mb", "allowed_paths": [str(EXAMPLES_DIR)],
            "blocked_paths": [str(service.exports_dir.absolute()), str(service.store.root.absolute())],
            "run_history": False, "app_kwargs": app_kwargs(service),
            "auth": service.auth.check if service.auth.users else None}


def build_app(service: Services, examples: ExampleRuns | None = None) -> gr.Blocks:
    """The whole UI and API in one Blocks; `service` holds the models and the database. `examples` are
    the cached example runs (by default those of the service's models: none with the tiny preset)."""
    examples = examples if examples is not None else ExampleRuns(ExampleCache(service.health_check.models))
    gpu_limits = {"concurrency_limit": service.gpu_admission, "concurrency_id": "gpu"}  # turns: studio.scheduling
    critic_limits = {"concurrency_limit": None} if service.remote_critic else gpu_limits

    with gr.Blocks(title="RationalRewards Studio") as demo:
        with gr.Row(elem_id="rr-header", equal_height=True):
            gr.Markdown("**RationalRewards Studio** · generate → critique → refine", elem_id="rr-title")
            health = gr.Markdown(service.health_check.headline(), elem_id="rr-health")
            who = gr.Markdown(elem_id="rr-user")
            if service.auth.oauth:
                gr.LoginButton(size="sm")
        with gr.Accordion("Models and setup", open=False, elem_id="rr-details"):
            gr.Markdown(service.health_check.details())
        health_timer = gr.Timer(1.0)
        with gr.Tabs(elem_id="rr-tabs") as tabs:
            with gr.Tab("Create", id="create", elem_id="tab-create"):
                with gr.Row():
                    with gr.Column(scale=3, min_width=280):
                        prompt = gr.Textbox(label="Prompt", lines=2, placeholder="a red fox in the snow at dawn",
                                            info="Enter generates; Shift+Enter adds a new line.",
                                            elem_id="create-prompt")
                        negative = gr.Textbox(label="Negative prompt (optional)", elem_id="create-negative")
                        create_examples = gr.Examples(examples=T2I_EXAMPLES, inputs=[prompt],
                                                      label="Try a prompt", elem_id="create-examples")
                    with gr.Column(scale=2, min_width=280):
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
                        plan = gr.Markdown(plan_text(3, 3.5, True), elem_id="create-plan")
                with gr.Row():
                    run = gr.Button("Generate, critique and refine", variant="primary", elem_id="create-run")
                create = results_panel("create")
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                with gr.Row():
                    with gr.Column(min_width=280):
                        upload = gr.File(label="Source image: drop or choose a file", file_types=["image"],
                                         type="filepath", height=90, elem_id="edit-upload")
                        source = gr.Image(label="Source image (from a file, or sent from Create)", type="filepath",
                                          interactive=False, height=240, elem_id="edit-source")
                        upload_note = gr.Markdown(elem_id="edit-upload-note")
                    slider = gr.ImageSlider(label="Before / after", height=330, elem_id="edit-slider",
                                            min_width=280)
                with gr.Row():
                    with gr.Column(scale=3, min_width=280):
                        instruction = gr.Textbox(label="Instruction", lines=2, placeholder="make the sky purple",
                                                 info="Enter edits; Shift+Enter adds a new line.",
                                                 elem_id="edit-instruction")
                        edit_examples_list = gr.Examples(examples=edit_examples(), inputs=[upload, instruction],
                                                         label="Try an edit", elem_id="edit-examples")
                    with gr.Column(scale=2, min_width=280):
                        with gr.Row():
                            edit_seed = gr.Number(label="Seed", value=0, precision=0, elem_id="edit-seed")
                            edit_randomize = gr.Checkbox(label="Randomize seed", value=False)
                        edit_steps = gr.Slider(1, 50, value=4, step=1, label="Steps", elem_id="edit-steps")
                        edit_rounds = gr.Slider(1, 10, value=2, step=1, label="Rounds", elem_id="edit-rounds")
                        with gr.Row():
                            edit_threshold = gr.Slider(1, 4, value=3.5, step=0.1, label="Stop threshold", scale=3)
                            edit_stop_early = gr.Checkbox(label="Stop early when every score reaches it", value=True,
                                                          scale=2, elem_id="edit-stop-early")
                        edit_plan = gr.Markdown(plan_text(2, 3.5, True), elem_id="edit-plan")
                edit_run = gr.Button("Edit, critique and refine", variant="primary", elem_id="edit-run")
                edit = results_panel("edit")
            # Hidden until the page load shows it to an annotator or admin: Gradio shows a tab that
            # starts hidden when told to, but does not hide a shown tab again.
            with gr.Tab("Annotate", id="annotate", elem_id="tab-annotate", visible=False) as annotate_tab:
                gr.HTML(keys_html(), elem_id="rr-help-host")
                with gr.Tabs(elem_id="annotate-views"):
                    with gr.Tab("Review critiques", id="review", elem_id="tab-review") as review_tab:
                        with gr.Column(elem_id="annotate-panel"):
                            annotate = annotate_panel()
                    with gr.Tab("Compare A/B", id="compare", elem_id="tab-compare") as compare_tab:
                        with gr.Column(elem_id="compare-panel"):
                            pair = pair_panel()
                with gr.Row():
                    gr.Markdown("Keyboard: press **?** for the keys of each view.", elem_id="annotate-keys-hint")
                    help_btn = gr.Button("Keys (?)", size="sm", elem_id="annotate-help")
                agreement = agreement_panel()
            with gr.Tab("Sessions", id="sessions", elem_id="tab-sessions") as sessions_tab:
                with gr.Row():
                    search = gr.Textbox(label="Search your sessions by prompt", scale=4, elem_id="sessions-search")
                    search_btn = gr.Button("Search", scale=1, elem_id="sessions-search-btn")
                sessions_gallery = gr.Gallery(label="Your sessions: best image · reward · request (click to select)",
                                              columns=6, height=230, object_fit="contain", allow_preview=False, fit_columns=False,
                                              elem_id="sessions-gallery")
                table = gr.Dataframe(headers=list(SESSION_COLUMNS), interactive=False, wrap=True,
                                     column_widths=list(SESSION_COLUMN_WIDTHS),
                                     elem_id="sessions-table")
                chosen = gr.State("")
                selected_note = gr.Markdown("Click a session (its image or its row) to open or delete it.",
                                            elem_id="sessions-selected")
                with gr.Row():
                    open_btn = gr.Button("Open and continue", variant="primary", elem_id="sessions-open")
                    delete_btn = gr.Button("Delete…", variant="stop", elem_id="sessions-delete")
                with gr.Row(visible=False, elem_id="sessions-confirm") as confirm_row:
                    confirm_text = gr.Markdown(elem_id="sessions-confirm-text")
                    confirm_yes = gr.Button("Yes, delete it", variant="stop", elem_id="sessions-confirm-delete")
                    confirm_no = gr.Button("Cancel", elem_id="sessions-cancel-delete")
                with gr.Column(visible=False, elem_id="export-panel") as export_group:
                    gr.Markdown("### Export training data (annotators and admins)")
                    counts = gr.Markdown(elem_id="export-counts")
                    with gr.Row():
                        fmt = gr.Dropdown(list(FORMATS), value="pairs", label="Format", elem_id="export-format")
                        parquet = gr.Checkbox(label="Parquet (default JSONL)", value=False)
                        export_btn = gr.Button("Export", elem_id="export-run")
                    export_file = gr.File(label="Download: the export and its images (zip)", elem_id="export-file")
                    export_note = gr.Markdown(elem_id="export-note")
                    export_cmd = gr.Code(label="The same export from a shell on the server, in the app's folder "
                                               "(for larger data)", language="shell", elem_id="export-command")
                purge = purge_panel(HIDDEN_COLUMNS, HIDDEN_COLUMN_WIDTHS)
            training = training_tab()

        ui = StudioUI(create=create, edit=edit, annotate=annotate, pair=pair, agreement=agreement, create_seed=seed,
                      edit_seed=edit_seed, source=source, slider=slider, tabs=tabs, table=table, chosen=chosen,
                      counts=counts, export_file=export_file, export_note=export_note, export_command=export_cmd,
                      who=who, health=health, annotate_tab=annotate_tab, sessions_tab=sessions_tab,
                      create_form=RunForm(prompt=prompt, seed=seed, randomize=randomize, steps=steps, rounds=rounds,
                                          threshold=threshold, stop_early=stop_early, plan=plan, negative=negative,
                                          candidates=candidates),
                      edit_form=RunForm(prompt=instruction, seed=edit_seed, randomize=edit_randomize,
                                        steps=edit_steps, rounds=edit_rounds, threshold=edit_threshold,
                                        stop_early=edit_stop_early, plan=edit_plan),
                      health_timer=health_timer, upload_note=upload_note, sessions_gallery=sessions_gallery,
                      selected_note=selected_note, confirm_row=confirm_row, confirm_text=confirm_text,
                      export_group=export_group, purge=purge)
        h = StudioHandlers(service, ui)

        # --- wiring (UI events are private; the documented API is ui.api) -------------------------
        private = {"api_visibility": "private"}
        create_inputs = [prompt, negative, seed, randomize, steps, rounds, candidates, threshold, stop_early]
        edit_inputs = [source, instruction, edit_seed, edit_randomize, edit_steps, edit_rounds, edit_threshold,
                       edit_stop_early]
        # Each run is checked first by a handler with no outputs; the run follows only on success, so a
        # refusal leaves every output as it was and only the toast speaks. Enter in the prompt clicks
        # the run button (assets/app.js), so there is one path.
        run.click(h.check_create, create_inputs, None, api_name="ui_check_create", **private) \
            .success(gpu(h.create), create_inputs, create.outputs + [seed], api_name="ui_create",
                     **gpu_limits, **private)
        edit_run.click(h.check_edit, edit_inputs, None, api_name="ui_check_edit", **private) \
            .success(gpu(h.edit), edit_inputs, edit.outputs + [edit_seed, slider], api_name="ui_edit",
                     **gpu_limits, **private)
        create.more.click(h.check_more, [create.session, create.refined], None, api_name="ui_check_more",
                          **private) \
            .success(gpu(h.more_create), [create.session, create.refined], create.outputs, api_name="ui_more",
                     **gpu_limits, **private)
        edit.more.click(h.check_more, [edit.session, edit.refined], None, api_name="ui_check_more_edit",
                        **private) \
            .success(gpu(h.more_edit), [edit.session, edit.refined], edit.outputs + [slider],
                     api_name="ui_more_edit", **gpu_limits, **private)
        for form, name in ((ui.create_form, "create"), (ui.edit_form, "edit")):
            gr.on([form.rounds.change, form.threshold.change, form.stop_early.change], h.plan,
                  [form.rounds, form.threshold, form.stop_early], form.plan, api_name=f"ui_plan_{name}",
                  **private)
        upload.change(h.check_upload, upload, None, api_name="ui_check_upload", **private) \
            .success(h.upload_source, upload, [source, upload_note], api_name="ui_upload", **private)
        for panel, name, retry, select, use in ((create, "create", h.retry_create, h.select_create,
                                                 h.use_prompt_create),
                                                (edit, "edit", h.retry_edit, h.select_edit, h.use_prompt_edit)):
            panel.stop.click(h.stop, None, None, api_name=f"ui_stop_{name}", concurrency_limit=None,
                             **private)
            panel.keep.click(h.keep, panel.candidate_id, None, api_name=f"ui_keep_{name}", **private)
            panel.retry.click(gpu(retry), panel.candidate_id, panel.outputs, api_name=f"ui_retry_{name}",
                              **critic_limits, **private)
            panel.gallery.select(select, panel.session, panel.outputs + [slider], api_name=f"ui_select_{name}",
                                 **private)
            panel.use_prompt.click(use, [panel.session, panel.selected], panel.refined,
                                   api_name=f"ui_use_prompt_{name}", **private)
            panel.edit_this.click(h.to_edit, panel.candidate_id, [source, upload_note, tabs],
                                  api_name=f"ui_edit_this_{name}", **private)
        if examples.enabled:  # a cached example's click shows its finished run; else it only fills inputs
            for listed, shown, outputs, name in (
                    (create_examples, examples.show(create), create.outputs, "create"),
                    (edit_examples_list, examples.show(edit, slider), edit.outputs + [slider], "edit")):
                listed.dataset.click(shown, listed.dataset, outputs, api_name=f"ui_example_{name}", **private)
        health_timer.tick(h.health_tick, None, [health, health_timer], api_name="ui_health", **private)

        listing = [table, sessions_gallery]
        search_btn.click(h.sessions, search, listing, api_name="ui_sessions", **private)
        search.submit(h.sessions, search, listing, api_name="ui_sessions_submit", **private)
        sessions_tab.select(h.sessions, search, listing, api_name="ui_sessions_tab", **private) \
            .then(h.counts, None, counts, api_name="ui_counts", **private) \
            .then(h.hidden, None, purge.outputs, api_name="ui_hidden_tab", **private)
        picked = [chosen, selected_note, confirm_row]
        table.select(h.pick_session, table, picked, api_name="ui_pick_session", **private)
        sessions_gallery.select(h.pick_session, table, picked, api_name="ui_pick_card", **private)
        form_outputs = [c for form in (ui.create_form, ui.edit_form) for c in vars(form).values()
                        if isinstance(c, gr.components.Component)]
        open_btn.click(h.open, chosen, create.outputs + edit.outputs + form_outputs + [slider, source, tabs],
                       api_name="ui_open", **private)
        delete_btn.click(h.ask_delete, [chosen, table], [confirm_row, confirm_text], api_name="ui_ask_delete",
                         **private)
        confirm_no.click(h.cancel_delete, None, confirm_row, api_name="ui_cancel_delete", **private)
        confirm_yes.click(h.delete, [chosen, search], listing + picked, api_name="ui_delete", **private) \
            .then(h.hidden, None, purge.outputs, api_name="ui_hidden_after_delete", **private)
        purge.refresh.click(h.hidden, None, purge.outputs, api_name="ui_hidden", **private)
        purge.table.select(h.pick_hidden, purge.table, [purge.chosen, purge.note, purge.confirm_row],
                           api_name="ui_pick_hidden", **private)
        purge.ask.click(h.ask_purge, purge.chosen, [purge.confirm_row, purge.confirm_text],
                        api_name="ui_ask_purge", **private)
        purge.cancel.click(h.cancel_purge, None, purge.confirm_row, api_name="ui_cancel_purge", **private)
        purge.confirm.click(h.purge, purge.chosen, purge.outputs, api_name="ui_purge", **private)
        export_btn.click(h.export, [fmt, parquet], [export_file, export_note, export_cmd, counts],
                         api_name="ui_export", **private)

        review, trail = annotate, annotate.trail
        for trigger, name in ((annotate_tab.select, "ui_queue"), (review_tab.select, "ui_queue_tab"),
                              (annotate.load.click, "ui_queue_load")):
            trigger(h.next_critique, trail, review.outputs, api_name=name, **private)
        review.submit.click(h.submit, review.inputs, review.outputs, api_name="ui_annotate", **private)
        review.skip.click(h.skip, [review.loaded, trail], review.outputs, api_name="ui_skip", **private)
        review.back.click(h.back, trail, review.outputs, api_name="ui_back", **private)
        review.undo.click(h.undo, trail, review.outputs, api_name="ui_undo", **private)
        compare_tab.select(h.next_pair, pair.trail, pair.outputs, api_name="ui_pair", **private)
        for button, pick, name in ((pair.pick_left, h.pick_left, "left"), (pair.pick_right, h.pick_right, "right"),
                                   (pair.pick_tie, h.pick_tie, "tie")):
            button.click(pick, [pair.pair, pair.trail], pair.outputs, api_name=f"ui_pick_{name}", **private)
        pair.skip.click(h.skip_pair, [pair.pair, pair.trail], pair.outputs, api_name="ui_skip_pair", **private)
        pair.undo.click(h.undo_pick, pair.trail, pair.outputs, api_name="ui_undo_pick", **private)
        agreement.refresh.click(h.agreement, None, agreement.text, api_name="ui_agreement", **private)
        help_btn.click(None, None, None, js="() => window.rrToggleHelp && window.rrToggleHelp()")
        demo.load(h.load, None, [who, health, annotate_tab, sessions_tab, export_group, purge.group],
                  api_name="ui_load", **private)

        wire_training(training, service, demo)
        register_api(service, gpu_limits, critic_limits)
    return demo


def main(argv: list[str] | None = None) -> None:
    """`python app.py`: flags (each with an environment variable), the service, models warming up in
    the background, then the server."""
    env = os.environ
    parser = argparse.ArgumentParser(description="RationalRewards Studio")
    parser.add_argument("--host", default=env.get("RR_HOST", "127.0.0.1" if not env.get("SPACE_ID") else "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env.get("RR_PORT", env.get("GRADIO_SERVER_PORT", "7860"))))
    parser.add_argument("--preset", choices=PRESETS, default=env.get("RR_PRESET", "auto"))
    parser.add_argument("--database-url", default=env.get("RR_DATABASE_URL") or None)
    parser.add_argument("--critic-url", default=env.get("RR_CRITIC_URL") or None)
    parser.add_argument("--critic-t2i-url", default=None, help="the T2I critic's server (RR_CRITIC_T2I_URL)")
    parser.add_argument("--critic-edit-url", default=None, help="the edit critic's server (RR_CRITIC_EDIT_URL)")
    parser.add_argument("--critic-timeout", type=float, default=None,
                        help="total seconds per remote critique, retries included (RR_CRITIC_TIMEOUT, 300)")
    parser.add_argument("--critic-retries", type=int, default=None,
                        help="extra attempts after a refused connection or a 5xx (RR_CRITIC_RETRIES, 2)")
    parser.add_argument("--low-memory", action="store_true", default=env.get("RR_LOW_MEMORY", "") in ("1", "true"))
    add_artefact_arguments(parser)
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="hardware profile (RR_PROFILE; auto on a Space): what stays loaded, bf16 or 4-bit")
    parser.add_argument("--auth", default=env.get("RR_AUTH", ""), help='"alice:pw:designer,bob:pw:annotator"')
    parser.add_argument("--max-runs-per-user", type=int, default=int(env.get("RR_MAX_RUNS_PER_USER", "2")),
                        help="GPU jobs one user may have queued or running")
    parser.add_argument("--max-queued", type=int, default=int(env.get("RR_MAX_QUEUED", "16")),
                        help="GPU jobs queued or running in all; beyond it a job is refused as busy")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    auth = AuthSettings.from_env({**env, "RR_AUTH": args.auth})
    remote_critics = uses_critic_server(args.preset, env, critic_url=args.critic_url,
                                        critic_t2i_url=args.critic_t2i_url, critic_edit_url=args.critic_edit_url)
    service = create_services(args.preset, database_url_text=args.database_url, critic_url=args.critic_url,
                              critic_t2i_url=args.critic_t2i_url, critic_edit_url=args.critic_edit_url,
                              critic_timeout=args.critic_timeout, critic_retries=args.critic_retries,
                              low_memory=args.low_memory, auth=auth, max_runs_per_user=args.max_runs_per_user,
                              artefacts=artefacts_from_args(args), max_queued=args.max_queued,
                              gpu_workers=zerogpu.gpu_concurrency(),
                              plan=plan_for(args.profile, env, remote_critics=remote_critics))
    models = service.health_check.models
    zerogpu.install(models)
    examples = ExampleRuns(ExampleCache(models), slots=service.runs.slots)  # a real critic's: in the background
    if getattr(models.preset.profile, "load_at_start", False):
        service.warm_up()  # ZeroGPU forks its GPU workers from this process: load before serving
        examples.start()
    elif examples.start(before=service.warm_up) is None:
        threading.Thread(target=service.warm_up, name="warm-up", daemon=True).start()
    demo = build_app(service, examples)
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs(service))


if __name__ == "__main__":
    main()
