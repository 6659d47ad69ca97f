"""What the UI and the API show of a run: plain dataclasses and formatting helpers (score bars with
the rubric level beside each number, the prompt diff, the plot's rows, the gallery). No Gradio here.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import html
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from rr_core.critique import Critique, ParseStatus
from rr_core.errors import InvalidImage
from rr_core.images import data_url, load_image
from rr_core.rubric import describe_score, dimensions

@dataclass
class CandidateView:
    round_index: int
    candidate_index: int
    seed: int | None
    image: Image.Image
    critique: Critique | None = None
    round_id: int | None = None

    @property
    def reward(self) -> float | None:
        return self.critique.reward if self.critique is not None else None


@dataclass
class RoundView:
    index: int
    prompt: str
    candidates: list[CandidateView] = field(default_factory=list)
    pick: int | None = None
    proposal: str = ""
    done: bool = False

    @property
    def shown(self) -> CandidateView | None:
        """The candidate the UI details: the pick, else the last one critiqued, else the first."""
        if self.pick is not None and self.pick < len(self.candidates):
            return self.candidates[self.pick]
        critiqued = [c for c in self.candidates if c.critique is not None]
        return critiqued[-1] if critiqued else (self.candidates[0] if self.candidates else None)


@dataclass
class RunView:
    """A session as the UI shows it; updated in place while a run streams."""

    session_id: str
    task: str
    request: str
    source_image: Image.Image | None = None
    rounds: list[RoundView] = field(default_factory=list)
    live_text: str = ""
    status: str = ""
    messages: list[str] = field(default_factory=list)
    best: tuple[int, int] | None = None
    done: bool = False
    stop_reason: str | None = None

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
        return self.rounds[self.best[0]].candidates[self.best[1]]

    @property
    def next_prompt(self) -> str:
        """The prompt a further round would use: the last finished round's proposal."""
        for round_ in reversed(self.rounds):
            if round_.done:
                return round_.proposal or round_.prompt
        return self.request

    @property
    def previous_prompt(self) -> str:
        for round_ in reversed(self.rounds):
            if round_.done:
                return round_.prompt
        return self.request

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
                    "candidate": c.candidate_index, "round_id": c.round_id, "seed": c.seed, "reward": c.reward,
                    "critique": critique_dict(c.critique),
                    **({"image": data_url(c.image)} if images else {}),
                } for c in round_.candidates],
            })
        return {"session_id": self.session_id, "task": self.task, "request": self.request, "status": self.status,
                "done": self.done, "stop_reason": self.stop_reason, "messages": list(self.messages),
                "best": None if self.best is None else {"round": self.best[0], "candidate": self.best[1]},
                "next_prompt": self.next_prompt, "live_text": self.live_text, "rounds": rounds}


def critique_dict(critique: Critique | None) -> dict[str, Any] | None:
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
        rows.append({"key": dim.key, "heading": dim.heading, "score": score, "not_applicable": na,
                     "description": describe_score(critique.task, dim.key, score, na),
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
    parts.append(f"<div class='rr-reward'>Reward: <b>{reward}</b> · parse: {critique.status.value}</div></div>")
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
            rows.append({"round": round_.index + 1, "series": "reward (1 + 3r)", "value": 1.0 + 3.0 * shown.reward})
    return rows


def gallery_items(view: RunView) -> list[tuple[Image.Image, str]]:
    items = []
    for round_ in view.rounds:
        for c in round_.candidates:
            reward = "no score" if c.reward is None else f"reward {c.reward:.2f}"
            star = "★ best · " if view.best == (round_.index, c.candidate_index) else ""
            items.append((c.image, f"{star}round {round_.index + 1} · #{c.candidate_index + 1} · {reward}"))
    return items


def decode_image_payload(payload: str | bytes | Image.Image | None, what: str = "image") -> Image.Image | None:
    """An API image (a data URL or base64 PNG/JPEG/WebP), a file path the web layer already checked,
    or a PIL image, through load_image's checks."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return None
    if isinstance(payload, str) and (payload.startswith("data:") or len(payload) > 1024):
        text = payload.split(",", 1)[1] if payload.startswith("data:") else payload
        try:
            payload = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage(f"The {what} is not valid base64 image data.") from None
    elif isinstance(payload, str):
        raise InvalidImage(f"The {what} must be a data URL (data:image/png;base64,...) or base64 image bytes.")
    return load_image(payload)
