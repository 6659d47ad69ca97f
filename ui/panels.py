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
    """What a run shows (Create and Edit each have one)."""

    status: gr.Markdown
    gallery: gr.Gallery
    plot: gr.LinePlot
    scores: gr.HTML
    summary: gr.Markdown
    retry: gr.Button
    refined: gr.Textbox
    diff: gr.HighlightedText
    more: gr.Button
    stop: gr.Button
    keep: gr.Button
    raw: gr.Textbox
    session: gr.State
    round_id: gr.State

    @property
    def outputs(self) -> list[gr.components.Component]:
        """Every component `result_values` may set."""
        return [self.session, self.status, self.raw, self.scores, self.summary, self.refined, self.diff,
                self.plot, self.gallery, self.retry, self.round_id]


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
    """Status, gallery, plot, score bars, the refined prompt with its diff, and the streaming critique."""
    status = gr.Markdown(elem_id=f"{prefix}-status")
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Rounds (★ = best)", columns=4, height=320,
                                 elem_id=f"{prefix}-gallery")
            plot = gr.LinePlot(x="round", y="value", color="series", y_lim=[0.8, 4.2], height=280,
                               label="Scores and reward by round", elem_id=f"{prefix}-plot")
        with gr.Column(scale=2):
            scores = gr.HTML(elem_id=f"{prefix}-scores")
            summary = gr.Markdown(elem_id=f"{prefix}-summary")
            retry = gr.Button("Retry the critique", visible=False, elem_id=f"{prefix}-retry")
    refined = gr.Textbox(label="Refined prompt (editable: the next round uses it)", lines=3,
                         elem_id=f"{prefix}-refined")
    diff = gr.HighlightedText(label="Change from the previous prompt", color_map={"+": "green", "-": "red"},
                              combine_adjacent=True, elem_id=f"{prefix}-diff")
    with gr.Row():
        more = gr.Button("Run one more round", elem_id=f"{prefix}-more")
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop")
        keep = gr.Button("Keep this image", elem_id=f"{prefix}-keep")
    with gr.Accordion("Critique as the critic writes it", open=True):
        raw = gr.Textbox(lines=8, max_lines=20, show_label=False, elem_id=f"{prefix}-raw")
    return ResultsPanel(status=status, gallery=gallery, plot=plot, scores=scores, summary=summary,
                        retry=retry, refined=refined, diff=diff, more=more, stop=stop, keep=keep, raw=raw,
                        session=gr.State(""), round_id=gr.State(None))


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
