"""Groups of components the app lays out more than once or maps values onto together.

A panel is a plain record of named components, so a mapper can say `{panel.status: text}` and a
missing value can never shift the others. The builders only lay components out; they must be
called inside a `gr.Blocks` context.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from rr_core.rubric import dimensions

MAX_DIMENSIONS = max(len(dimensions(task)) for task in ("t2i", "edit"))
VERDICTS = ("accept", "reject", "correct")


@dataclass(eq=False)
class ResultsPanel:
    """What a run shows (Create and Edit each have one): the selected (else best) image large with
    its scores beside it, every image as a strip of thumbnails, and the actions on that image."""

    status: gr.Markdown
    image: gr.Image
    caption: gr.Markdown
    gallery: gr.Gallery
    plot: gr.HTML
    scores: gr.HTML
    summary: gr.Markdown
    retry: gr.Button
    keep: gr.Button
    use_prompt: gr.Button
    edit_this: gr.Button
    refined: gr.Textbox
    diff: gr.HighlightedText
    more: gr.Button
    stop: gr.Button
    raw: gr.Textbox
    session: gr.State
    candidate_id: gr.State
    selected: gr.State

    @property
    def outputs(self) -> list[gr.components.Component]:
        """Every component `result_values` may set."""
        return [self.session, self.status, self.raw, self.scores, self.summary, self.refined, self.diff,
                self.plot, self.gallery, self.retry, self.candidate_id, self.image, self.caption, self.selected]


@dataclass(eq=False)
class DimensionRow:
    """One dimension of the critique under review: its text and the annotator's three fields."""

    row: gr.Row
    text: gr.Markdown
    verdict: gr.Radio
    comment: gr.Textbox
    score: gr.Number

    @property
    def fields(self) -> list[gr.components.Component]:
        return [self.verdict, self.comment, self.score]


@dataclass(eq=False)
class AnnotatePanel:
    """The Review critiques view: one critique at a time, one row per dimension, its own progress,
    a note line for confirmations (no toast over the form) and Skip / Back / Undo."""

    loaded: gr.State
    trail: gr.State
    progress: gr.Markdown
    note: gr.Markdown
    image: gr.Image
    source: gr.Image
    request: gr.Markdown
    raw: gr.Textbox
    dims: list[DimensionRow]
    submit: gr.Button
    skip: gr.Button
    back: gr.Button
    undo: gr.Button
    load: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        """Every component `critique_values` sets."""
        out = [self.loaded, self.trail, self.progress, self.note, self.image, self.source, self.request, self.raw]
        for dim in self.dims:
            out += [dim.row, dim.text, *dim.fields]
        return out

    @property
    def inputs(self) -> set[gr.components.Component]:
        """What a submit reads, as a set so the handler receives one `{component: value}` dict."""
        return {self.loaded, self.trail, *(field for dim in self.dims for field in dim.fields)}


@dataclass(eq=False)
class PairPanel:
    """The Compare A/B view: two images of one request, sides shuffled per pair, its own progress."""

    pair: gr.State
    trail: gr.State
    progress: gr.Markdown
    note: gr.Markdown
    text: gr.Markdown
    image_left: gr.Image
    image_right: gr.Image
    pick_left: gr.Button
    pick_right: gr.Button
    pick_tie: gr.Button
    skip: gr.Button
    undo: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.pair, self.trail, self.progress, self.note, self.text, self.image_left, self.image_right]


@dataclass(eq=False)
class AgreementPanel:
    """Agreement between reviewers, position bias, and (admins) the disagreement queue."""

    text: gr.Markdown
    refresh: gr.Button


def results_panel(prefix: str) -> ResultsPanel:
    """The large image with its caption and the thumbnail strip on the left; scores, reward, summary
    and the image's actions on the right; then the score history, the refined prompt with its diff,
    and the critique as it streams in."""
    status = gr.Markdown(elem_id=f"{prefix}-status")
    with gr.Row(elem_classes=["rr-results"]):
        with gr.Column(scale=3, min_width=240):
            caption = gr.Markdown(elem_id=f"{prefix}-caption")
            image = gr.Image(show_label=False, interactive=False, height=420, elem_id=f"{prefix}-image",
                             elem_classes=["rr-focus"], buttons=["download", "fullscreen"])
            gallery = gr.Gallery(label="All images (click one to inspect it; ★ = best)", columns=5, rows=1,
                                 height=170, object_fit="contain", allow_preview=False, fit_columns=False,
                                 elem_id=f"{prefix}-gallery", elem_classes=["rr-strip"])
        with gr.Column(scale=2, min_width=240):
            scores = gr.HTML(elem_id=f"{prefix}-scores")
            summary = gr.Markdown(elem_id=f"{prefix}-summary")
            retry = gr.Button("Retry the critique", visible=False, elem_id=f"{prefix}-retry")
            with gr.Row(elem_classes=["rr-actions"]):
                keep = gr.Button("Keep", size="sm", min_width=70, elem_id=f"{prefix}-keep")
                use_prompt = gr.Button("Use its prompt", size="sm", min_width=90, elem_id=f"{prefix}-use-prompt")
                edit_this = gr.Button("Edit this image", size="sm", min_width=90, elem_id=f"{prefix}-edit-this")
    plot = gr.HTML(elem_id=f"{prefix}-plot")
    refined = gr.Textbox(label="Prompt for the next round (editable)", lines=3, elem_id=f"{prefix}-refined")
    diff = gr.HighlightedText(label="Change from the previous prompt", color_map={"+": "green", "-": "red"},
                              combine_adjacent=True, elem_id=f"{prefix}-diff")
    with gr.Row():
        more = gr.Button("Run one more round", elem_id=f"{prefix}-more")
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop")
    with gr.Accordion("Critique as the critic writes it", open=False):
        raw = gr.Textbox(lines=8, max_lines=20, show_label=False, elem_id=f"{prefix}-raw")
    return ResultsPanel(status=status, image=image, caption=caption, gallery=gallery, plot=plot, scores=scores,
                        summary=summary, retry=retry, keep=keep, use_prompt=use_prompt, edit_this=edit_this,
                        refined=refined, diff=diff, more=more, stop=stop, raw=raw, session=gr.State(""),
                        candidate_id=gr.State(None), selected=gr.State(None))


REVIEW_KEYS = (("j / ↓, k / ↑", "next / previous dimension"), ("a · r · c", "accept · reject · correct it"),
               ("1 – 4", "corrected score (then + / − steps 0.25)"), ("m", "comment on it"),
               ("Enter", "submit and next"), ("s · b · u", "skip · back · undo the last submit"),
               ("?", "this help"))
COMPARE_KEYS = (("1 / ←", "left is better"), ("2 / →", "right is better"), ("3 / t", "tie"),
                ("s · u", "skip · undo the last pick"), ("?", "this help"))


def keys_html() -> str:
    """The help overlay (`?`): both views' keys; keys never act while typing in a field."""
    def table(title: str, keys: tuple[tuple[str, str], ...]) -> str:
        rows = "".join(f"<tr><td><kbd>{key}</kbd></td><td>{what}</td></tr>" for key, what in keys)
        return f"<h4>{title}</h4><table>{rows}</table>"
    return ("<div id='rr-help' class='rr-help' role='dialog' aria-label='Keyboard shortcuts' hidden>"
            "<div class='rr-help-box'>" + table("Review critiques", REVIEW_KEYS) + table("Compare A/B", COMPARE_KEYS)
            + "<p>Keys never act while you type in a text, number or verdict field; Enter still submits, "
              "and Esc leaves the field so the keys act again. Esc or ? closes this.</p></div></div>")


def annotate_panel() -> AnnotatePanel:
    """The Review critiques view; rows beyond the loaded critique's dimensions stay hidden."""
    with gr.Row():
        progress = gr.Markdown(elem_id="annotate-progress")
        note = gr.Markdown(elem_id="annotate-note")
    loaded = gr.State(None)
    trail = gr.State({"skipped": [], "history": []})
    with gr.Row():
        image = gr.Image(label="Image", interactive=False, height=260, elem_id="annotate-image")
        source = gr.Image(label="Source", interactive=False, height=260, visible=False,
                          elem_id="annotate-source")
        request = gr.Markdown(elem_id="annotate-request")
    with gr.Accordion("The critique as written", open=False):
        raw = gr.Textbox(lines=6, max_lines=12, show_label=False, elem_id="annotate-raw")
    dims = []
    for i in range(MAX_DIMENSIONS):
        with gr.Row(visible=False, elem_classes=["rr-dim"], elem_id=f"dim-{i}") as row:
            text = gr.Markdown()
            verdict = gr.Radio(list(VERDICTS), label="Verdict", elem_id=f"verdict-{i}")
            comment = gr.Textbox(label="Comment", elem_id=f"comment-{i}")
            score = gr.Number(label="Corrected score (1-4)", value=None, minimum=1, maximum=4, step=0.25,
                              elem_id=f"score-{i}")
        dims.append(DimensionRow(row=row, text=text, verdict=verdict, comment=comment, score=score))
    with gr.Row():
        submit = gr.Button("Submit and next (Enter)", variant="primary", elem_id="annotate-submit")
        skip = gr.Button("Skip (s)", elem_id="annotate-skip")
        back = gr.Button("Back (b)", elem_id="annotate-back")
        undo = gr.Button("Undo last submit (u)", elem_id="annotate-undo")
        load = gr.Button("Reload", elem_id="annotate-load")
    return AnnotatePanel(loaded=loaded, trail=trail, progress=progress, note=note, image=image, source=source,
                         request=request, raw=raw, dims=dims, submit=submit, skip=skip, back=back, undo=undo,
                         load=load)


def pair_panel() -> PairPanel:
    """The Compare A/B view."""
    with gr.Row():
        progress = gr.Markdown(elem_id="pair-progress")
        note = gr.Markdown(elem_id="pair-note")
    pair = gr.State(None)
    trail = gr.State({"skipped": []})
    text = gr.Markdown(elem_id="pair-request")
    with gr.Row():
        image_left = gr.Image(label="Left", interactive=False, height=260, elem_id="pair-left")
        image_right = gr.Image(label="Right", interactive=False, height=260, elem_id="pair-right")
    with gr.Row():
        pick_left = gr.Button("Left is better (1)", elem_id="pick-left")
        pick_right = gr.Button("Right is better (2)", elem_id="pick-right")
        pick_tie = gr.Button("Tie (3)", elem_id="pick-tie")
        skip = gr.Button("Skip (s)", elem_id="pair-skip")
        undo = gr.Button("Undo last pick (u)", elem_id="pair-undo")
    return PairPanel(pair=pair, trail=trail, progress=progress, note=note, text=text, image_left=image_left,
                     image_right=image_right, pick_left=pick_left, pick_right=pick_right, pick_tie=pick_tie,
                     skip=skip, undo=undo)


def agreement_panel() -> AgreementPanel:
    """Agreement figures; the disagreement queue shows for admins only."""
    with gr.Accordion("Agreement between reviewers", open=False, elem_id="agreement"):
        refresh = gr.Button("Refresh", size="sm", elem_id="agreement-refresh")
        text = gr.Markdown(elem_id="agreement-text")
    return AgreementPanel(text=text, refresh=refresh)


@dataclass(eq=False)
class PurgePanel:
    """The Sessions tab's admin part: the sessions owners deleted while other users' reviews kept
    them, and a purge that asks first (the delete flow's ask / confirm row). Hidden until the page
    load shows it to an admin, as the export panel is shown to reviewers."""

    group: gr.Column
    table: gr.Dataframe
    chosen: gr.State
    note: gr.Markdown
    refresh: gr.Button
    ask: gr.Button
    confirm_row: gr.Row
    confirm_text: gr.Markdown
    confirm: gr.Button
    cancel: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        """Every component `hidden_values` sets."""
        return [self.table, self.chosen, self.note, self.confirm_row]


def purge_panel(columns: tuple[str, ...], widths: tuple[str, ...]) -> PurgePanel:
    """The admins' hidden sessions table with Refresh and Purge…, and the question before a purge."""
    with gr.Column(visible=False, elem_id="purge-panel") as group:
        gr.Markdown("### Sessions hidden by their owners (admins)\nDeleted by their owners, kept because other "
                    "users annotated them or picked between their images. Purging one removes that training "
                    "data for good.")
        table = gr.Dataframe(headers=list(columns), interactive=False, wrap=True, column_widths=list(widths),
                             elem_id="purge-table")
        chosen = gr.State("")
        note = gr.Markdown(elem_id="purge-selected")
        with gr.Row():
            refresh = gr.Button("Refresh", elem_id="purge-refresh")
            ask = gr.Button("Purge…", variant="stop", elem_id="purge-ask")
        with gr.Row(visible=False, elem_id="purge-confirm") as confirm_row:
            confirm_text = gr.Markdown(elem_id="purge-confirm-text")
            confirm = gr.Button("Yes, purge it", variant="stop", elem_id="purge-confirm-yes")
            cancel = gr.Button("Cancel", elem_id="purge-cancel")
    return PurgePanel(group=group, table=table, chosen=chosen, note=note, refresh=refresh, ask=ask,
                      confirm_row=confirm_row, confirm_text=confirm_text, confirm=confirm, cancel=cancel)


@dataclass(eq=False)
class RunForm:
    """The settings a run starts from (Create has them all; Edit has no negative prompt and one
    candidate), so a reopened session can fill them back in."""

    prompt: gr.Textbox
    seed: gr.Number
    randomize: gr.Checkbox
    steps: gr.Slider
    rounds: gr.Slider
    threshold: gr.Slider
    stop_early: gr.Checkbox
    plan: gr.Markdown
    negative: gr.Textbox | None = None
    candidates: gr.Slider | None = None


@dataclass(eq=False)
class StudioUI:
    """Every component a handler sets, by name (built by app.py's layout)."""

    create: ResultsPanel
    edit: ResultsPanel
    annotate: AnnotatePanel
    pair: PairPanel
    agreement: AgreementPanel
    create_seed: gr.Number
    edit_seed: gr.Number
    source: gr.Image
    slider: gr.ImageSlider
    tabs: gr.Tabs
    table: gr.Dataframe
    chosen: gr.Textbox
    counts: gr.Markdown
    export_file: gr.File
    export_note: gr.Markdown
    export_command: gr.Code
    who: gr.Markdown
    health: gr.Markdown
    annotate_tab: gr.Tab
    sessions_tab: gr.Tab
    export_group: gr.Column
    create_form: RunForm | None = None
    edit_form: RunForm | None = None
    health_timer: gr.Timer | None = None
    upload_note: gr.Markdown | None = None
    sessions_gallery: gr.Gallery | None = None
    selected_note: gr.Markdown | None = None
    confirm_row: gr.Row | None = None
    confirm_text: gr.Markdown | None = None
    purge: PurgePanel | None = None
