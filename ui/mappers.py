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


def critique_progress_text(progress: dict[str, int]) -> str:
    """The Review view's progress line: yours, left for you, everyone's."""
    return (f"Reviewed {progress['mine']} by you · {progress['remaining']} left for you · "
            f"{progress['everyone']} of {progress['total']} critiques reviewed by anyone")


def critique_values(panel: AnnotatePanel, item: dict[str, Any] | None, trail: dict[str, list[Any]],
                    progress: dict[str, int] | None = None, note: str = "") -> Values:
    """A critique to review (the service's dict) on the form, or an empty form when none is left.
    A corrected score starts empty, with the critic's score as its placeholder, so a changed score
    shows; the reviewer's own earlier verdicts (after Back or Undo) are filled in."""
    values: Values = {panel.trail: trail, panel.note: note}
    if item is None:
        values.update({panel.loaded: None, panel.image: None,
                       panel.progress: (critique_progress_text(progress) if progress else "")
                       + "\n\nNothing left to review. 🎉",
                       panel.source: gr.update(value=None, visible=False), panel.request: "", panel.raw: ""})
        scores: list[dict[str, Any]] = []
        mine: dict[str, dict[str, Any]] = {}
    else:
        scores, mine = item["scores"], item.get("mine", {})
        failed = "\n\n⚠️ This critique did not parse: judge its raw text." if item["status"] == "failed" else ""
        prompt = f"\n\n**Prompt of this image:** {item['prompt']}" if item.get("prompt") != item["request"] else ""
        values.update({
            panel.loaded: {"id": item["critique_id"], "keys": [row["key"] for row in scores]},
            panel.progress: critique_progress_text(item["progress"]),
            panel.image: gr.update(value=item["image"], label=f"Image: {item['label']}"),
            panel.source: gr.update(value=item["source_image"], visible=item["source_image"] is not None),
            panel.request: (f"**Request ({item['task']}, {item['label']}):** {item['request']}{prompt}\n\n"
                            f"**Summary:** {item['summary'] or '—'}{failed}"),
            panel.raw: item["raw_text"],
        })
    for i, dim in enumerate(panel.dims):
        row = scores[i] if i < len(scores) else None
        own = mine.get(row["key"], {}) if row is not None else {}
        critic = "" if row is None or row["score"] is None else f"critic: {row['score']:g}"
        values.update({
            dim.row: gr.update(visible=row is not None),
            dim.text: "" if row is None else
            f"**{row['heading']}** — {row['description']}\n\n{row['justification'] or ''}",
            dim.verdict: gr.update(value=own.get("verdict")),
            dim.comment: own.get("comment", ""),
            dim.score: gr.update(value=own.get("score"), placeholder=critic),
        })
    return values


def verdicts_of(panel: AnnotatePanel, form: Values) -> tuple[int, dict[str, dict[str, Any]]]:
    """The review form's values as (critique id, verdicts per dimension key) for service.annotate;
    dimensions without a verdict are left out; only a correction carries its score."""
    loaded = form.get(panel.loaded)
    if not loaded:
        raise ValueError("No critique loaded: open the queue first.")
    verdicts = {}
    for key, dim in zip(loaded["keys"], panel.dims):
        verdict, score = form.get(dim.verdict), form.get(dim.score)
        if verdict:
            verdicts[key] = {"verdict": verdict, "comment": form.get(dim.comment) or "",
                             "score": score if verdict == "correct" else None}
    return loaded["id"], verdicts


def pair_progress_text(progress: dict[str, Any]) -> str:
    """The Compare view's progress line, with your share of left picks (position bias)."""
    share = progress.get("left_share")
    bias = "" if share is None else f" · your left picks: {share:.0%}"
    return (f"Compared {progress['mine']} by you · {progress['remaining']} left for you · "
            f"{progress['everyone']} of {progress['total']} pairs compared by anyone{bias}")


def pair_values(panel: PairPanel, pair: dict[str, Any] | None, trail: dict[str, list[Any]],
                progress: dict[str, Any] | None = None, note: str = "") -> Values:
    """Two images of one request (the service's dict, sides already shuffled), or an empty view;
    each image is named as the gallery names it ("round 1 · #2")."""
    values: Values = {panel.trail: trail, panel.note: note}
    if pair is None:
        values.update({panel.image_left: gr.update(value=None, label="Left"),
                       panel.image_right: gr.update(value=None, label="Right"), panel.pair: None,
                       panel.text: "No pairs left to compare.",
                       panel.progress: pair_progress_text(progress) if progress else ""})
        return values
    left, right = pair["left"], pair["right"]
    values.update({
        panel.image_left: gr.update(value=left["image"], label=f"Left: {left['label']}"),
        panel.image_right: gr.update(value=right["image"], label=f"Right: {right['label']}"),
        panel.pair: {"left": left["round_id"], "right": right["round_id"], "key": pair["key"]},
        panel.progress: pair_progress_text(pair["progress"]),
        panel.text: (f"**Request:** {pair['request']}\n\nLeft ({left['label']}): {left['prompt']}\n\n"
                     f"Right ({right['label']}): {right['prompt']}"),
    })
    return values


def agreement_text(found: dict[str, Any], disagreements: list[dict[str, Any]] | None) -> str:
    """Agreement per view (items judged twice or more, mean share agreeing; Cohen's kappa per reviewer
    pair), position bias per reviewer, and for admins the disagreement queue."""
    lines = []
    for kind, title in (("critiques", "Critique dimensions"), ("pairs", "A/B pairs")):
        items = found[kind]["items"]
        mean = sum(i["agreement"] for i in items) / len(items) if items else None
        lines.append(f"**{title}:** {len(items)} judged by two or more reviewers"
                     + ("" if mean is None else f", mean agreement {mean:.0%}"))
        for pair in found[kind]["reviewer_pairs"]:
            kappa = "undefined" if pair["kappa"] is None else f"{pair['kappa']:.2f}"
            lines.append(f"- {pair['first']} & {pair['second']}: {pair['items']} shared, "
                         f"{pair['observed']:.0%} same, Cohen's κ {kappa}")
    bias = found["position_bias"]
    if bias:
        lines.append("**Left picks (position bias, 50% is none):** "
                     + ", ".join(f"{who} {b['left_share']:.0%} of {b['picks']}" for who, b in sorted(bias.items())))
    if disagreements is not None:
        lines.append(f"**Disagreements to settle (admins): {len(disagreements)}**")
        for item in disagreements[:50]:
            lines.append(f"- {item['label']}: {item['judgements']} judgements, {item['agreement']:.0%} agree")
    return "\n".join(line if line.startswith("- ") else f"\n{line}\n" for line in lines).strip()


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
