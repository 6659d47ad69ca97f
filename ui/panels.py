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
    round_id: gr.State
    selected: gr.State

    @property
    def outputs(self) -> list[gr.components.Component]:
        """Every component `result_values` may set."""
        return [self.session, self.status, self.raw, self.scores, self.summary, self.refined, self.diff,
                self.plot, self.gallery, self.retry, self.round_id, self.image, self.caption, self.selected]


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
    """The critique review form: one critique at a time, one row per dimension."""

    loaded: gr.State
    progress: gr.Markdown
    image: gr.Image
    source: gr.Image
    request: gr.Markdown
    raw: gr.Textbox
    dims: list[DimensionRow]
    submit: gr.Button
    load: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        """Every component `critique_values` sets."""
        out = [self.loaded, self.progress, self.image, self.source, self.request, self.raw]
        for dim in self.dims:
            out += [dim.row, dim.text, *dim.fields]
        return out

    @property
    def inputs(self) -> set[gr.components.Component]:
        """What a submit reads, as a set so the handler receives one `{component: value}` dict."""
        return {self.loaded, *(field for dim in self.dims for field in dim.fields)}


@dataclass(eq=False)
class PairPanel:
    """Two rounds of one request side by side, and the A / B / tie buttons."""

    pair: gr.State
    text: gr.Markdown
    image_a: gr.Image
    image_b: gr.Image
    pick_a: gr.Button
    pick_b: gr.Button
    pick_tie: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.image_a, self.image_b, self.pair, self.text]


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
                        round_id=gr.State(None), selected=gr.State(None))


def annotate_panel() -> AnnotatePanel:
    """The review form; rows beyond the loaded critique's dimensions stay hidden."""
    progress = gr.Markdown(elem_id="annotate-progress")
    loaded = gr.State(None)
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
            score = gr.Number(label="Corrected score (1-4)", minimum=1, maximum=4, elem_id=f"score-{i}")
        dims.append(DimensionRow(row=row, text=text, verdict=verdict, comment=comment, score=score))
    with gr.Row():
        submit = gr.Button("Submit and next (Enter)", variant="primary", elem_id="annotate-submit")
        load = gr.Button("Load queue", elem_id="annotate-load")
    return AnnotatePanel(loaded=loaded, progress=progress, image=image, source=source, request=request,
                         raw=raw, dims=dims, submit=submit, load=load)


def pair_panel() -> PairPanel:
    """The A/B comparison."""
    gr.Markdown("### Which image is better for the request?")
    pair = gr.State(None)
    text = gr.Markdown(elem_id="pair-request")
    with gr.Row():
        image_a = gr.Image(label="A", interactive=False, height=220, elem_id="pair-a")
        image_b = gr.Image(label="B", interactive=False, height=220, elem_id="pair-b")
    with gr.Row():
        pick_a = gr.Button("A is better (1)", elem_id="pick-a")
        pick_b = gr.Button("B is better (2)", elem_id="pick-b")
        pick_tie = gr.Button("Tie (3)", elem_id="pick-tie")
    return PairPanel(pair=pair, text=text, image_a=image_a, image_b=image_b, pick_a=pick_a, pick_b=pick_b,
                     pick_tie=pick_tie)


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
    create_form: RunForm | None = None
    edit_form: RunForm | None = None
    health_timer: gr.Timer | None = None
    upload_note: gr.Markdown | None = None
    sessions_gallery: gr.Gallery | None = None
    selected_note: gr.Markdown | None = None
    confirm_row: gr.Row | None = None
    confirm_text: gr.Markdown | None = None
