"""Pure functions between the service's plain values and the UI's components.

Each mapper returns `{component: value}` for the components it sets and leaves the rest out, so
Gradio keeps their current values; no output list to keep in step, no positional `gr.skip()`s.
Nothing here calls the service.
"""

from __future__ import annotations

import random
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from studio.views import RunView, gallery_items, history_rows, prompt_diff, scores_html
from ui.panels import AnnotatePanel, PairPanel, ResultsPanel

Values = dict[Any, Any]


def result_values(panel: ResultsPanel, view: RunView, light: bool = False) -> Values:
    """A run's view on a results panel; `light` refreshes only the streaming critique text."""
    if light:
        return {panel.raw: view.live_text}
    latest = view.latest
    critique = latest.critique if latest is not None else None
    status = view.status + "".join(f"\n\n⚠️ {m}" for m in view.messages)
    if view.models_line:
        status += f"\n\n{view.models_line}"
    if len(view.rounds) > 1:  # refined prompts drive the generator; the scores stay comparable
        status += f"\n\nEvery round is scored against your request: “{view.request}”."
    summary = f"**Summary.** {critique.summary}" if critique is not None and critique.summary else ""
    # An empty frame would fix the plot's encodings on no data (Gradio then draws no lines for later
    # frames), so "no history yet" is sent as None.
    rows = history_rows(view)
    history = pd.DataFrame(rows, columns=["round", "series", "value"]).astype(
        {"round": int, "series": str, "value": float}) if rows else None
    best = view.best_candidate or latest
    values = {
        panel.session: view.session_id,
        panel.status: status,
        panel.raw: view.live_text or (critique.raw_text if critique is not None else ""),
        panel.scores: scores_html(critique),
        panel.summary: summary,
        panel.diff: prompt_diff(view.previous_prompt, view.next_prompt) if view.rounds else [],
        panel.plot: history,
        panel.gallery: gallery_items(view),
        panel.retry: gr.update(visible=view.parse_failed),
        panel.round_id: best.round_id if best is not None else None,
    }
    if view.done or (view.rounds and view.rounds[-1].done):  # never overwrite a prompt being edited mid-round
        values[panel.refined] = view.next_prompt
    return values


def slider_value(view: RunView) -> tuple[Image.Image, Image.Image] | None:
    """Before/after for an edit run: the source and the best (else latest) image; None for text-to-image."""
    latest = view.best_candidate or view.latest
    if view.source_image is None or latest is None:
        return None
    return (view.source_image, latest.image)


def _whole(value: float | None, label: str) -> int:
    if value is None:
        raise ValueError(f"{label} is empty; give a whole number.")
    return int(value)


def settings_of(negative: str, seed: float | None, randomize: bool, steps: float | None, rounds: float | None,
                candidates: float | None, threshold: float | None, stop_early: bool) -> dict[str, Any]:
    """The form's loop settings as the service takes them (a random seed when asked, no stop rule
    when stopping early is off)."""
    return {"negative_prompt": negative or "",
            "seed": random.randint(0, 2**31 - 1) if randomize else int(seed or 0),
            "steps": _whole(steps, "Steps"), "rounds": _whole(rounds, "Rounds"),
            "candidates": _whole(candidates, "Candidates per round"),
            "stop_threshold": float(threshold) if stop_early and threshold is not None else None}


def critique_values(panel: AnnotatePanel, item: dict[str, Any] | None) -> Values:
    """The next critique to review (service.next_critique's dict) on the review form, or an empty form."""
    values: Values = {}
    if item is None:
        values.update({panel.loaded: None, panel.progress: "Nothing left to review. 🎉", panel.image: None,
                       panel.source: gr.update(value=None, visible=False), panel.request: "", panel.raw: ""})
        scores: list[dict[str, Any]] = []
    else:
        scores = item["scores"]
        note = "\n\n⚠️ This critique did not parse: judge its raw text." if item["status"] == "failed" else ""
        values.update({
            panel.loaded: {"id": item["critique_id"], "keys": [row["key"] for row in scores]},
            panel.progress: (f"Reviewed **{item['progress']['done']}** · in the queue: "
                             f"**{item['progress']['remaining']}**"),
            panel.image: item["image"],
            panel.source: gr.update(value=item["source_image"], visible=item["source_image"] is not None),
            panel.request: f"**Request:** {item['request']}\n\n**Summary:** {item['summary'] or '—'}{note}",
            panel.raw: item["raw_text"],
        })
    for i, dim in enumerate(panel.dims):
        row = scores[i] if i < len(scores) else None
        values.update({
            dim.row: gr.update(visible=row is not None),
            dim.text: "" if row is None else
            f"**{row['heading']}** — {row['description']}\n\n{row['justification'] or ''}",
            dim.verdict: gr.update(value=None),
            dim.comment: "",
            dim.score: None if row is None else row["score"],
        })
    return values


def verdicts_of(panel: AnnotatePanel, form: Values) -> tuple[int, dict[str, dict[str, Any]]]:
    """The review form's values as (critique id, verdicts per dimension key) for service.annotate;
    dimensions without a verdict are left out."""
    loaded = form.get(panel.loaded)
    if not loaded:
        raise ValueError("No critique loaded: open the queue first.")
    verdicts = {}
    for key, dim in zip(loaded["keys"], panel.dims):
        verdict = form.get(dim.verdict)
        if verdict:
            verdicts[key] = {"verdict": verdict, "comment": form.get(dim.comment) or "",
                             "score": form.get(dim.score)}
    return loaded["id"], verdicts


def pair_values(panel: PairPanel, pair: dict[str, Any] | None) -> Values:
    """Two rounds to compare (service.next_pair's dict), or an empty comparison."""
    if pair is None:
        return {panel.image_a: None, panel.image_b: None, panel.pair: None,
                panel.text: "No pairs left to compare."}
    return {panel.image_a: pair["image_a"], panel.image_b: pair["image_b"],
            panel.pair: [pair["round_a"], pair["round_b"]],
            panel.text: f"**Request:** {pair['request']}\n\nA: {pair['prompt_a']}\n\nB: {pair['prompt_b']}"}


def counts_text(stats: dict[str, int]) -> str:
    """The export panel's counts line from service.stats."""
    return (f"Preference pairs: **{stats['preference_pairs']}** · annotated critiques: "
            f"**{stats['annotated_critiques']}** · your sessions: **{stats['my_sessions']}**")


def sessions_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """service.list_sessions's rows as the sessions table."""
    return pd.DataFrame(rows, columns=["id", "title", "task", "rounds", "created"])


def picked_session(table: pd.DataFrame | None, index: int | list[int] | tuple[int, ...]) -> str:
    """The session id of the clicked table row ("" outside the table)."""
    row = index[0] if isinstance(index, (list, tuple)) else index
    return str(table.iloc[row]["id"]) if table is not None and 0 <= row < len(table) else ""
