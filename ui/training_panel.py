"""The Training tab (admins): what is ready to train on, the commands that train on this database, and
the runs under the data folder. Layout and wiring only; studio.training computes everything.

app.py calls `training_tab()` inside its gr.Tabs and `wire_training(...)` after its own wiring; the
tab shows itself on page load to admins only, and refreshes when selected or on its button.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from rr_core.errors import RRError
from studio.container import Services
from studio.training import TrainingOverview
from ui.errors import shown_errors
from ui.identity import username_of

RUN_HEADERS = ["run", "kind", "step", "latest metrics", "artefact"]


@dataclass
class TrainingPanel:
    """The Training tab's components."""

    tab: gr.Tab
    counts: gr.Markdown
    commands: gr.Code
    runs: gr.Dataframe
    refresh: gr.Button

    @property
    def outputs(self) -> list[Any]:
        return [self.counts, self.commands, self.runs]


def training_tab() -> TrainingPanel:
    """The tab's layout (hidden until the page load shows it to an admin)."""
    with gr.Tab("Training", id="training", elem_id="tab-training", visible=False) as tab:
        gr.Markdown("Train on what this studio has collected: run the commands on a GPU machine with access to "
                    "this database; runs that write under the data folder show their progress here.")
        counts = gr.Markdown(elem_id="training-counts")
        commands = gr.Code(label="Commands for this database", language="shell", elem_id="training-commands")
        runs = gr.Dataframe(headers=RUN_HEADERS, interactive=False, elem_id="training-runs")
        refresh = gr.Button("Refresh", elem_id="training-refresh")
    return TrainingPanel(tab, counts, commands, runs, refresh)


def counts_markdown(counts: dict[str, int]) -> str:
    """The ready-for-training line."""
    return (f"**Ready for training:** {counts['pairs']} judged A/B pairs (PARROT) · "
            f"{counts['reviewed_critiques']} reviewed critiques (distillation) · "
            f"{counts['prompts_t2i']} text-to-image and {counts['prompts_edit']} edit prompts (RL)")


def overview_values(panel: TrainingPanel, overview: TrainingOverview) -> dict[Any, Any]:
    """The overview as component values."""
    rows = [run.row() for run in overview.runs]
    return {panel.counts: counts_markdown(overview.counts), panel.commands: overview.commands,
            panel.runs: pd.DataFrame(rows, columns=RUN_HEADERS)}


def wire_training(panel: TrainingPanel, service: Services, demo: gr.Blocks) -> None:
    """Show the tab to admins on load; fill it when selected and on Refresh."""

    def visible(request: gr.Request) -> dict[Any, Any]:
        try:
            admin = service.role(username_of(request)).value == "admin"
        except RRError:
            admin = False
        return {panel.tab: gr.Tab(visible=admin)}

    @shown_errors
    def show(request: gr.Request) -> dict[Any, Any]:
        return overview_values(panel, service.training_overview(username_of(request)))

    private = {"api_visibility": "private"}
    demo.load(visible, None, [panel.tab], api_name="ui_training_visible", **private)
    panel.tab.select(show, None, panel.outputs, api_name="ui_training", **private)
    panel.refresh.click(show, None, panel.outputs, api_name="ui_training_refresh", **private)
