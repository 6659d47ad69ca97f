"""What the UI and the API show of a run, derived from the run model (studio.run_model): the view
objects the app reads and the formatting helpers (score bars with the rubric level beside each
number, the prompt diff, the plot's rows, the gallery). No Gradio here.
"""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from rr_core.critique import Critique, ParseStatus, invalid_score_text
from rr_core.images import data_url
from rr_core.loop import Candidate, RoundResult
from rr_core.rubric import describe_score, dimensions
from studio.run_model import Run


@dataclass(frozen=True)
class CandidateView:
    """One image of a round as the UI shows it: the loop's candidate with its database id."""

    round_index: int
    candidate: Candidate
    candidate_id: int | None = None

    @property
    def candidate_index(self) -> int:
        return self.candidate.index

    @property
    def seed(self) -> int | None:
        return self.candidate.seed

    @property
    def image(self) -> Image.Image:
        return self.candidate.image

    @property
    def critique(self) -> Critique | None:
        return self.candidate.critique

    @property
    def reward(self) -> float | None:
        return self.candidate.reward


@dataclass(frozen=True)
class RoundView:
    """One round as the UI shows it, derived from the run model's round."""

    result: RoundResult
    done: bool
    candidates: list[CandidateView]

    @property
    def index(self) -> int:
        return self.result.index

    @property
    def prompt(self) -> str:
        return self.result.prompt

    @property
    def pick(self) -> int | None:
        return self.result.pick

    @property
    def proposal(self) -> str:
        return self.result.proposal

    @property
    def shown(self) -> CandidateView | None:
        """The candidate the UI details: the pick, else the last one critiqued, else the first."""
        if self.pick is not None and self.pick < len(self.candidates):
            return self.candidates[self.pick]
        critiqued = [c for c in self.candidates if c.critique is not None]
        return critiqued[-1] if critiqued else (self.candidates[0] if self.candidates else None)


def short_model_id(model_id: str) -> str:
    """A model id for one line: local folders by their name (a hub id or artefact id stays whole)."""
    return "+".join(Path(part).name if Path(part).is_absolute() else part for part in model_id.split("+"))


@dataclass
class RunView:
    """A session as the UI shows it: the run model plus what only the screen needs (the status line,
    the critique text streaming in, notes about failed steps). Everything else is read from `run`, so
    a live run and a reopened one show the same."""

    run: Run
    status: str = ""
    live_text: str = ""
    messages: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    """The session's stored loop settings (a reopened session fills the form back from them)."""

    @property
    def session_id(self) -> str:
        return self.run.session_id

    @property
    def task(self) -> str:
        return self.run.task.value

    @property
    def request(self) -> str:
        return self.run.request

    @property
    def source_image(self) -> Image.Image | None:
        return self.run.source_image

    @property
    def done(self) -> bool:
        return self.run.done

    @property
    def stop_reason(self) -> str | None:
        return self.run.stop_reason

    @property
    def best(self) -> tuple[int, int] | None:
        return self.run.best

    @property
    def models_line(self) -> str:
        """One short line saying which models made this result (generator with its LoRA, critics), so
        a student's or an RL LoRA's output is never mistaken for the base model's."""
        critics = sorted({c.critique.model_id for result, _ in self.run.rounds for c in result.candidates
                          if c.critique is not None and c.critique.model_id})
        parts = ([f"generator `{short_model_id(self.run.generator_id)}`"] if self.run.generator_id else []) + \
            ([f"critic `{', '.join(short_model_id(c) for c in critics)}`"] if critics else [])
        return f"Made by {' · '.join(parts)}" if parts else ""

    @property
    def rounds(self) -> list[RoundView]:
        return [RoundView(result, done, [CandidateView(result.index, c, self.run.candidate_id(result.index, c.index))
                                         for c in result.candidates])
                for result, done in self.run.rounds]

    @property
    def latest(self) -> CandidateView | None:
        for round_ in reversed(self.rounds):
            if round_.shown is not None:
                return round_.shown
        return None

    @property
    def best_candidate(self) -> CandidateView | None:
        if self.best is None:
            return None
        round_index, candidate_index = self.best
        return next((c for r in self.rounds if r.index == round_index for c in r.candidates
                     if c.candidate_index == candidate_index), None)

    @property
    def candidates(self) -> list[CandidateView]:
        """Every image of the run in gallery order (round by round, candidate by candidate)."""
        return [c for round_ in self.rounds for c in round_.candidates]

    def candidate_at(self, index: int) -> CandidateView | None:
        """The image at a gallery position, None outside the gallery."""
        flat = self.candidates
        return flat[index] if 0 <= index < len(flat) else None

    def focus(self, selected: tuple[int, int] | None = None) -> CandidateView | None:
        """The image the results panel details: the one the user selected, else the best so far,
        else the newest one with a critique, else the newest image. A round cut short by Stop has an
        image but no critique, so it never hides the finished rounds' scores."""
        flat = self.candidates
        if selected is not None:
            chosen = next((c for c in flat if (c.round_index, c.candidate_index) == tuple(selected)), None)
            if chosen is not None:
                return chosen
        best = self.best_candidate
        if best is not None:
            return best
        critiqued = [c for c in flat if c.critique is not None]
        return critiqued[-1] if critiqued else (flat[-1] if flat else None)

    def prompt_of(self, candidate: CandidateView) -> str:
        """What "use its prompt" puts in the prompt box: the candidate's refined request when its
        critique proposed one, else the prompt that made it."""
        if candidate.critique is not None and candidate.critique.refined_request:
            return candidate.critique.refined_request
        return next(r.prompt for r in self.rounds if r.index == candidate.round_index)

    @property
    def next_prompt(self) -> str:
        """The prompt a further round would use: the last finished round's proposal."""
        return self.run.next_prompt

    @property
    def previous_prompt(self) -> str:
        return self.run.previous_prompt

    @property
    def parse_failed(self) -> bool:
        latest = self.latest
        return latest is not None and latest.critique is not None and latest.critique.status is ParseStatus.FAILED

    def to_dict(self, images: bool = False) -> dict[str, Any]:
        """A JSON view for API clients; images as PNG data URLs when asked."""
        rounds = []
        for round_ in self.rounds:
            rounds.append({
                "round": round_.index, "prompt": round_.prompt, "pick": round_.pick, "proposal": round_.proposal,
                "done": round_.done,
                "candidates": [{
                    "candidate": c.candidate_index, "candidate_id": c.candidate_id, "seed": c.seed, "reward": c.reward,
                    "critique": critique_dict(c.critique),
                    **({"image": data_url(c.image)} if images else {}),
                } for c in round_.candidates],
            })
        return {"session_id": self.session_id, "task": self.task, "request": self.request, "status": self.status,
                "done": self.done, "stop_reason": self.stop_reason, "messages": list(self.messages),
                "best": None if self.best is None else {"round": self.best[0], "candidate": self.best[1]},
                "next_prompt": self.next_prompt, "live_text": self.live_text, "rounds": rounds}


def critique_dict(critique: Critique | None) -> dict[str, Any] | None:
    """A critique as API clients read it (None when the image has none yet)."""
    if critique is None:
        return None
    return {"status": critique.status.value, "reward": critique.reward, "summary": critique.summary,
            "refined_request": critique.refined_request, "raw_text": critique.raw_text, "error": critique.error,
            "scores": score_rows(critique)}


def score_rows(critique: Critique) -> list[dict[str, Any]]:
    """Per dimension: the score, its rubric level description and the justification."""
    rows = []
    for dim in dimensions(critique.task):
        entry = critique.scores.get(dim.key)
        score = entry.score if entry is not None else None
        na = bool(entry and entry.not_applicable)
        invalid = invalid_score_text(entry) if entry is not None else None
        rows.append({"key": dim.key, "heading": dim.heading, "score": score, "not_applicable": na,
                     "description": invalid or describe_score(critique.task, dim.key, score, na),
                     "raw_score": entry.raw_score if entry is not None else "",
                     "invalid": entry.invalid if entry is not None else "",
                     "justification": entry.justification if entry is not None else ""})
    return rows


def scores_html(critique: Critique | None) -> str:
    """Score bars with the rubric level beside each number; a failed parse shows no score at all."""
    if critique is None:
        return "<div class='rr-scores rr-empty'>No critique yet.</div>"
    if critique.status is ParseStatus.FAILED:
        reason = html.escape(critique.error or "the critique did not follow the expected format")
        return (f"<div class='rr-scores rr-failed'><b>The critique could not be parsed</b> ({reason}). "
                "No score is shown; read the raw critique below or retry.</div>")
    parts = ["<div class='rr-scores'>"]
    for row in score_rows(critique):
        width = 0 if row["score"] is None else (row["score"] - 1.0) / 3.0 * 100
        parts.append(
            f"<div class='rr-score' data-key='{row['key']}'><div class='rr-score-head'>{html.escape(row['heading'])}</div>"
            f"<div class='rr-bar'><div class='rr-fill' style='width:{width:.0f}%'></div></div>"
            f"<div class='rr-level'>{html.escape(row['description'])}</div>"
            f"<div class='rr-why'>{html.escape(row['justification'])}</div></div>")
    reward = "—" if critique.reward is None else f"{critique.reward:.2f}"
    template = (f" · template <code>{html.escape(critique.template_version)}</code>"
                if critique.template_version else "")
    parts.append(f"<div class='rr-reward'>Reward: <b>{reward}</b> · parse: {critique.status.value}{template}"
                 "</div></div>")
    return "".join(parts)


def prompt_diff(old: str, new: str) -> list[tuple[str, str | None]]:
    """Word-level diff for gr.HighlightedText: ("word ", "+" | "-" | None)."""
    old_words, new_words = old.split(), new.split()
    out: list[tuple[str, str | None]] = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(a=old_words, b=new_words).get_opcodes():
        if op == "equal":
            out.append((" ".join(old_words[a0:a1]) + " ", None))
            continue
        if a1 > a0:
            out.append((" ".join(old_words[a0:a1]) + " ", "-"))
        if b1 > b0:
            out.append((" ".join(new_words[b0:b1]) + " ", "+"))
    return out


def history_rows(view: RunView) -> list[dict[str, Any]]:
    """Long-format rows (round, series, value) of each dimension's score and the reward per round.

    The reward is drawn on the scores' 1-4 axis as 1 + 3 * reward (the mean score it stands for),
    so one plot shows both without a second axis.
    """
    rows = []
    for round_ in view.rounds:
        shown = round_.shown
        if shown is None or shown.critique is None or shown.critique.status is ParseStatus.FAILED:
            continue
        for dim in dimensions(shown.critique.task):
            score = shown.critique.score(dim.key)
            if score is not None:
                rows.append({"round": round_.index + 1, "series": dim.heading, "value": score})
        if shown.reward is not None:
            rows.append({"round": round_.index + 1, "series": REWARD_SERIES, "value": 1.0 + 3.0 * shown.reward})
    return rows


def gallery_items(view: RunView) -> list[tuple[Image.Image, str]]:
    """Every image of the run with a short caption that fits under a thumbnail: round (and candidate
    when a round has several), reward, and a star on the best."""
    items = []
    for round_ in view.rounds:
        several = len(round_.candidates) > 1
        for c in round_.candidates:
            reward = "—" if c.reward is None else f"{c.reward:.2f}"
            star = "★ " if view.best == (round_.index, c.candidate_index) else ""
            which = f"R{round_.index + 1}" + (f".{c.candidate_index + 1}" if several else "")
            items.append((c.image, f"{star}{which} · {reward}"))
    return items


def focus_caption(view: RunView, candidate: CandidateView | None) -> str:
    """The heading over the large image: which round it is, its reward, and whether it is the best."""
    if candidate is None:
        return "No image yet."
    reward = "no reward (no parsed critique)" if candidate.reward is None else f"reward **{candidate.reward:.2f}**"
    several = any(len(r.candidates) > 1 for r in view.rounds)
    which = f"Round {candidate.round_index + 1}" + (f", image {candidate.candidate_index + 1}" if several else "")
    best = " · ★ best so far" if view.best == (candidate.round_index, candidate.candidate_index) else ""
    return f"{which} · {reward}{best}"


PLOT_COLORS = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#111827")
"""One colour per series: the dimensions in rubric order, then the reward (dark, dashed)."""
REWARD_SERIES = "Reward (as 1-4)"


def history_svg(view: RunView) -> str:
    """The score history as an inline SVG chart: one line per dimension named in the legend, the
    reward dashed, whole-number rounds on the x axis, and a dot on every point (so a single round is
    still drawn). Built here rather than by a plotting component, whose legend and axis ticks cannot
    be made to read this way."""
    rows = history_rows(view)
    if not rows:
        return "<div class='rr-plot rr-empty'>The score history appears after the first critique.</div>"
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        series.setdefault(row["series"], []).append((row["round"], row["value"]))
    last_round = max(row["round"] for row in rows)
    width, height, left, right, top, bottom = 520, 220, 36, 12, 10, 28
    span = max(last_round - 1, 1)

    def x(round_number: int) -> float:
        if last_round == 1:
            return left + (width - left - right) / 2
        return left + (round_number - 1) / span * (width - left - right)

    def y(value: float) -> float:
        return top + (4.0 - value) / 3.0 * (height - top - bottom)

    parts = [f"<svg class='rr-plot-svg' viewBox='0 0 {width} {height}' role='img' "
             f"aria-label='Scores by round' preserveAspectRatio='xMidYMid meet'>"]
    for level in (1, 2, 3, 4):
        parts.append(f"<line class='rr-grid' x1='{left}' x2='{width - right}' y1='{y(level):.1f}' "
                     f"y2='{y(level):.1f}'/><text class='rr-ytick' x='{left - 8}' y='{y(level) + 4:.1f}' "
                     f"text-anchor='end'>{level}</text>")
    step = max(1, -(-last_round // 10))  # at most about ten labels, always whole rounds
    for round_number in range(1, last_round + 1, step):
        parts.append(f"<text class='rr-xtick' x='{x(round_number):.1f}' y='{height - 8}' "
                     f"text-anchor='middle'>{round_number}</text>")
    legend = []
    for i, (name, points) in enumerate(series.items()):
        color = PLOT_COLORS[min(i, len(PLOT_COLORS) - 1)] if name != REWARD_SERIES else PLOT_COLORS[-1]
        dash = " stroke-dasharray='5 4'" if name == REWARD_SERIES else ""
        coords = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points)
        label = html.escape(name)
        parts.append(f"<g class='rr-series' data-series='{label}'>"
                     f"<polyline points='{coords}' fill='none' stroke='{color}' stroke-width='2'{dash}/>")
        for r, v in points:
            parts.append(f"<circle cx='{x(r):.1f}' cy='{y(v):.1f}' r='4' fill='{color}'>"
                         f"<title>{label}, round {r}: {v:.2f}</title></circle>")
        parts.append("</g>")
        legend.append(f"<span class='rr-key'><i style='background:{color}'></i>{label}</span>")
    parts.append("</svg>")
    return (f"<div class='rr-plot'><div class='rr-plot-title'>Scores by round (1-4)</div>{''.join(parts)}"
            f"<div class='rr-legend'>{''.join(legend)}</div></div>")
