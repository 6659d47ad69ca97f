"""What a critic returns: plain dataclasses, JSON-serializable, shared by the engine, storage and training."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from rr_core.rubric import Task, dimensions


class ParseStatus(str, enum.Enum):
    """ok: every dimension and the refined request were read; partial: some were; failed: none."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass
class DimensionScore:
    """One dimension of one critique. `score` is None when missing or N/A; `raw_score` is the text as written."""

    key: str
    score: float | None = None
    not_applicable: bool = False
    justification: str = ""
    raw_score: str = ""

    @property
    def valid(self) -> bool:
        return self.score is not None and not self.not_applicable


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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["task"] = self.task.value
        data["status"] = self.status.value
        data["reward_dimensions"] = list(self.reward_dimensions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Critique":
        data = dict(data)
        data["task"] = Task.parse(data["task"])
        data["status"] = ParseStatus(data.get("status", "failed"))
        data["scores"] = {k: DimensionScore(**v) for k, v in data.get("scores", {}).items()}
        data["reward_dimensions"] = tuple(data.get("reward_dimensions", ()))
        return cls(**data)

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
    key: str
    score_a: float | None = None
    score_b: float | None = None
    a_not_applicable: bool = False
    b_not_applicable: bool = False
    winner: Preference | None = None
    justification: str = ""


@dataclass
class PairwiseCritique:
    """A pairwise critique of image A against image B; `preference` comes from the summed scores."""

    task: Task
    dims: dict[str, PairDimension] = field(default_factory=dict)
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
