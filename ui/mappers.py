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

from rr_core.critique import ParseStatus
from studio.session_cards import SessionCard
from studio.sessions import contents_text
from studio.views import RunView, focus_caption, gallery_items, history_svg, prompt_diff, scores_html
from ui.panels import AnnotatePanel, PairPanel, PurgePanel, ResultsPanel, RunForm

Values = dict[Any, Any]


def result_values(panel: ResultsPanel, view: RunView, light: bool = False,
                  selected: tuple[int, int] | None = None) -> Values:
    """A run's view on a results panel; `light` refreshes only the streaming critique text.

    The large image, its caption, scores, summary, critique text and the id that Keep and Retry act on
    all describe one image: `selected` (round, candidate) when the user clicked a thumbnail, else the
    best so far (see RunView.focus), so they can never disagree with each other."""
    if light:
        return {panel.raw: view.live_text}
    focus = view.focus(selected)
    critique = focus.critique if focus is not None else None
    status = view.status + "".join(f"\n\n⚠️ {m}" for m in view.messages)
    if view.models_line:
        status += f"\n\n{view.models_line}"
    if len(view.rounds) > 1:  # refined prompts drive the generator; the scores stay comparable
        status += f"\n\nEvery round is scored against your request: “{view.request}”."
    if view.done and view.stop_reason == "threshold" and view.settings.get("rounds", 0) > len(view.rounds):
        status += (f"\n\nStopped early after {len(view.rounds)} of {view.settings['rounds']} rounds: every score "
                   f"reached {view.settings.get('stop_threshold')}. Turn off “stop early” to run them all.")
    summary = f"**Summary.** {critique.summary}" if critique is not None and critique.summary else ""
    live = view.live_text if not view.done and selected is None else ""
    values = {
        panel.session: view.session_id,
        panel.status: status,
        panel.raw: live or (critique.raw_text if critique is not None else ""),
        panel.scores: scores_html(critique),
        panel.summary: summary,
        panel.diff: prompt_diff(view.previous_prompt, view.next_prompt) if view.rounds else [],
        panel.plot: history_svg(view),
        panel.gallery: gallery_items(view),
        panel.retry: gr.update(visible=critique is not None and critique.status is ParseStatus.FAILED
                               and focus.candidate_id is not None),
        panel.candidate_id: focus.candidate_id if focus is not None else None,
        panel.image: focus.image if focus is not None else None,
        panel.caption: focus_caption(view, focus),
        panel.selected: (focus.round_index, focus.candidate_index) if selected is not None and focus else None,
    }
    if view.done or (view.rounds and view.rounds[-1].done):  # never overwrite a prompt being edited mid-round
        values[panel.refined] = view.next_prompt
    return values


def slider_value(view: RunView, selected: tuple[int, int] | None = None
                 ) -> tuple[Image.Image, Image.Image] | None:
    """Before/after for an edit run: the source and the image the panel details; None for text-to-image."""
    focus = view.focus(selected)
    if view.source_image is None or focus is None:
        return None
    return (view.source_image, focus.image)


def plan_text(rounds: float | None, threshold: float | None, stop_early: bool) -> str:
    """What the run will do, shown under the settings before it starts: the stop rule can end a run
    before the rounds asked for, and a designer should know that up front."""
    count = int(rounds or 1)
    if not stop_early or threshold is None:
        return f"Runs **{count}** round{'s' if count != 1 else ''} (stopping early is off)."
    return (f"Runs **up to {count}** round{'s' if count != 1 else ''}: it **stops early** as soon as every score "
            f"reaches **{float(threshold):g}**, so you may get fewer. Untick “stop early” to run them all.")


def form_values(form: RunForm, view: RunView) -> Values:
    """A reopened session's request and stored settings back in its form, so the next Generate
    starts from what made it (the seed as stored: randomizing is turned off)."""
    settings = view.settings
    threshold = settings.get("stop_threshold")
    values: Values = {form.prompt: view.request, form.randomize: False}
    for component, key in ((form.seed, "seed"), (form.steps, "steps"), (form.rounds, "rounds"),
                           (form.candidates, "candidates")):
        if component is not None and settings.get(key) is not None:
            values[component] = settings[key]
    if form.negative is not None:
        values[form.negative] = settings.get("negative_prompt") or ""
    values[form.stop_early] = threshold is not None
    if threshold is not None:
        values[form.threshold] = threshold
    values[form.plan] = plan_text(settings.get("rounds"), threshold, threshold is not None)
    return values


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
        panel.pair: {"left": left["candidate_id"], "right": right["candidate_id"], "key": pair["key"]},
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


def export_note(fmt: str, count: int, download: str | None = None) -> str:
    """The export panel's line after an export: how many records and the download link, or that
    nothing matched and why."""
    if count == 0:
        return (f"Nothing to export: no **{fmt}** records match yet (they come from annotated critiques and "
                "A/B picks), so there is no file to download.")
    link = f" [Download the zip]({download}) (the link is yours only)." if download else ""
    return (f"Wrote **{count}** {fmt} record(s).{link} The zip holds the file and its images with "
            "relative paths: unpack it anywhere and the records find their images.")


def counts_text(stats: dict[str, int]) -> str:
    """The export panel's counts line from service.stats."""
    return (f"Preference pairs: **{stats['preference_pairs']}** · annotated critiques: "
            f"**{stats['annotated_critiques']}** · your sessions: **{stats['my_sessions']}**")


SESSION_COLUMNS = ("request", "best reward", "rounds", "task", "date", "id")
"""The sessions table, what a designer recognises first; the id comes last (opening needs it)."""
SESSION_COLUMN_WIDTHS = ("28%", "18%", "10%", "12%", "16%", "16%")
"""Shares of the table's width, so a long request wraps instead of pushing the reward, rounds and
date out of a 390 px phone's view (left alone, the table sizes columns by their longest text);
a reward ("0.67") keeps one line at 390 px, and the id wraps in a few lines, not one character a line."""


def sessions_frame(cards: list[SessionCard]) -> pd.DataFrame:
    """The sessions table from studio.session_cards."""
    return pd.DataFrame([{"request": c.request,
                          "best reward": "—" if c.best_reward is None else f"{c.best_reward:.2f}",
                          "rounds": c.rounds, "task": "edit" if c.task == "edit" else "text-to-image",
                          "date": c.created.strftime("%Y-%m-%d %H:%M"), "id": c.session_id} for c in cards],
                        columns=list(SESSION_COLUMNS))


def session_gallery(cards: list[SessionCard]) -> list[tuple[Image.Image, str]]:
    """The sessions as thumbnails of their best images (same order as the table)."""
    blank = Image.new("RGB", (64, 64), (225, 225, 225))
    return [(c.image if c.image is not None else blank, c.caption) for c in cards]


def selected_text(table: pd.DataFrame | None, session_id: str) -> str:
    """What the Sessions view says is selected: the request and its rounds, never the id."""
    if not session_id or table is None:
        return "Click a session (its image or its row) to open or delete it."
    row = table[table["id"] == session_id].iloc[0]
    return f"Selected: “{row['request']}” · {row['rounds']} round(s) · best reward {row['best reward']}"


def picked_session(table: pd.DataFrame | None, index: int | list[int] | tuple[int, ...]) -> str:
    """The session id of the clicked table row ("" outside the table)."""
    row = index[0] if isinstance(index, (list, tuple)) else index
    return str(table.iloc[row]["id"]) if table is not None and 0 <= row < len(table) else ""


HIDDEN_COLUMNS = ("request", "owner", "hidden (UTC)", "annotations", "A/B picks", "id")
"""The admins' table of sessions hidden by their owners: what it was, whose, when, what hangs on it."""
HIDDEN_COLUMN_WIDTHS = ("30%", "12%", "18%", "12%", "12%", "16%")


def hidden_frame(hidden: list[dict[str, Any]]) -> pd.DataFrame:
    """The hidden sessions (service.hidden_sessions) as the admins' table."""
    return pd.DataFrame([{"request": h["request"], "owner": h["owner"], "hidden (UTC)": h["hidden_at"],
                          "annotations": h["annotations"], "A/B picks": h["picks"], "id": h["id"]} for h in hidden],
                        columns=list(HIDDEN_COLUMNS))


def hidden_selected_text(table: pd.DataFrame | None, session_id: str) -> str:
    """What the admins' panel says is selected (request and owner, never the id), or what to do."""
    if table is None or len(table) == 0:
        return "No session is hidden by its owner: nothing to purge."
    if not session_id or not (table["id"] == session_id).any():
        return f"{len(table)} hidden session(s). Click one to purge it."
    row = table[table["id"] == session_id].iloc[0]
    return (f"Selected: “{row['request']}” by {row['owner']} · {row['annotations']} annotation(s) · "
            f"{row['A/B picks']} A/B pick(s)")


def hidden_values(panel: PurgePanel, hidden: list[dict[str, Any]]) -> Values:
    """The admins' panel refreshed: the table, nothing selected, no question pending."""
    table = hidden_frame(hidden)
    return {panel.table: table, panel.chosen: "", panel.note: hidden_selected_text(table, ""),
            panel.confirm_row: gr.Row(visible=False)}


def purge_question(panel: PurgePanel, preview: dict[str, Any]) -> Values:
    """The question before a purge, saying exactly what goes (service.purge_preview's counts)."""
    return {panel.confirm_row: gr.Row(visible=True),
            panel.confirm_text: (f"**Purge {contents_text(preview)}?** This removes them for good: exports "
                                 "made after it no longer hold that training data.")}
