"""What a critic returns: plain dataclasses, JSON-serializable, shared by the engine, storage and training."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from rr_core.rubric import SCORE_MAX, SCORE_MIN, Task, dimensions


def in_range(score: float) -> bool:
    """Whether `score` is on the 1-4 scale. Exact bounds, no tolerance: scores are read from decimal
    text with no arithmetic in between, so a value above 4.0 (even 4.0000001) was written above 4."""
    return SCORE_MIN <= score <= SCORE_MAX


class ParseStatus(str, enum.Enum):
    """ok: every dimension and the refined request were read; partial: some were; failed: none (or
    only values that are not scores, such as "17"). A dimension with an invalid value keeps a
    critique from being ok."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass
class DimensionScore:
    """One dimension of one critique.

    `score` is None when missing, N/A or invalid; `raw_score` is the value as the model wrote it.
    `invalid` says why a written value is not a score (outside 1-4, not a number, another scale,
    N/A where the rubric forbids it); such a dimension never gets a score, not even a clamped one.
    """

    key: str
    score: float | None = None
    not_applicable: bool = False
    justification: str = ""
    raw_score: str = ""
    invalid: str = ""

    @property
    def valid(self) -> bool:
        if self.score is None or self.not_applicable or self.invalid:
            return False
        return in_range(self.score)


def invalid_score_text(entry: DimensionScore) -> str | None:
    """What a view shows in place of the score of an invalid dimension (None when it is not invalid).

    The value stays visible as written, marked as not a score, so a reader sees what the critic did
    without the app ever drawing it as one.
    """
    if not entry.invalid:
        return None
    written = entry.raw_score if len(entry.raw_score) <= 40 else entry.raw_score[:39] + "…"
    return f"not a score: {written!r} ({entry.invalid})"


def status_of(scores: dict[str, DimensionScore], task: Task, refined_request: str) -> ParseStatus:
    """The parse status from what was read: ok needs every dimension (score or allowed N/A) and the
    refined request; a critique with an invalid value and nothing valid is failed; else partial if
    anything was read."""
    entries = [scores.get(d.key) or DimensionScore(key=d.key) for d in dimensions(task)]
    read = [e for e in entries if e.valid or (e.not_applicable and not e.invalid)]
    if len(read) == len(entries) and refined_request:
        return ParseStatus.OK
    if any(e.invalid for e in entries) and not any(e.valid for e in entries):
        return ParseStatus.FAILED
    return ParseStatus.PARTIAL if read or refined_request else ParseStatus.FAILED


@dataclass
class Critique:
    """A pointwise critique of one image (and its source, for edits).

    A critique that did not parse keeps its raw text and has status failed and reward None: a
    failure is never a score.
    """

    task: Task
    scores: dict[str, DimensionScore] = field(default_factory=dict)
    analysis: str = ""
    summary: str = ""
    refinement_comments: str = ""
    refined_request: str = ""
    status: ParseStatus = ParseStatus.FAILED
    problems: list[str] = field(default_factory=list)
    raw_text: str = ""
    reward: float | None = None
    reward_dimensions: tuple[str, ...] = ()
    truncated: bool = False
    constrained: bool = False
    model_id: str = ""
    template_version: str = ""
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str = ""

    def score(self, key: str) -> float | None:
        entry = self.scores.get(key)
        return entry.score if entry is not None and entry.valid else None

    def invalid_keys(self) -> tuple[str, ...]:
        """Dimensions whose written value is not a 1-4 score (or that hold a score outside 1-4)."""
        return tuple(key for key, e in self.scores.items()
                     if e.invalid or (e.score is not None and not e.not_applicable and not in_range(e.score)))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["task"] = self.task.value
        data["status"] = self.status.value
        data["reward_dimensions"] = list(self.reward_dimensions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Critique":
        """Rebuild a stored critique. Its written scores are read again under today's rules, so a
        row stored while out-of-range values were clamped comes back invalid, not with a score."""
        data = dict(data)
        data["task"] = Task.parse(data["task"])
        data["status"] = ParseStatus(data.get("status", "failed"))
        data["scores"] = {k: DimensionScore(**v) for k, v in data.get("scores", {}).items()}
        data["reward_dimensions"] = tuple(data.get("reward_dimensions", ()))
        from rr_core.parser import recheck_scores  # the parser imports this module

        return recheck_scores(cls(**data))

    @classmethod
    def failure(cls, task: Task, error: str, raw_text: str = "", **meta: Any) -> "Critique":
        """A critique that could not be produced (server down, garbage answer): raw text kept, no score."""
        return cls(task=task, status=ParseStatus.FAILED, raw_text=raw_text, error=error,
                   problems=[error], **meta)


class Preference(str, enum.Enum):
    A = "A"
    B = "B"
    TIE = "tie"


@dataclass
class PairDimension:
    """One dimension of a pairwise critique; `a_invalid`, `b_invalid`: why a written value is no score."""

    key: str
    score_a: float | None = None
    score_b: float | None = None
    a_not_applicable: bool = False
    b_not_applicable: bool = False
    winner: Preference | None = None
    justification: str = ""
    raw_score_a: str = ""
    raw_score_b: str = ""
    a_invalid: str = ""
    b_invalid: str = ""


@dataclass
class PairwiseCritique:
    """A pairwise critique of image A against image B; `preference` comes from the summed scores.

    `analysis` is the model's reading of the request before it compares the images ("" when the
    text had none); it never affects the preference.

    A critique with an invalid score on any dimension has no preference (and no totals): the rest
    of its scores are not trusted to decide it.
    """

    task: Task
    dims: dict[str, PairDimension] = field(default_factory=dict)
    analysis: str = ""
    summary: str = ""
    preference: Preference | None = None
    total_a: float | None = None
    total_b: float | None = None
    status: ParseStatus = ParseStatus.FAILED
    problems: list[str] = field(default_factory=list)
    raw_text: str = ""
    truncated: bool = False
    constrained: bool = False
    model_id: str = ""
    template_version: str = ""
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["task"] = self.task.value
        data["status"] = self.status.value
        data["preference"] = self.preference.value if self.preference else None
        for d in data["dims"].values():
            d["winner"] = d["winner"].value if d["winner"] else None
        return data


def empty_scores(task: Task) -> dict[str, DimensionScore]:
    return {d.key: DimensionScore(key=d.key) for d in dimensions(task)}
