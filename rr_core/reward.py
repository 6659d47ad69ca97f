"""The one reward rule: (weighted mean of the chosen dimensions' valid scores - 1) / 3, in [0, 1].

N/A is left out of the mean rather than zeroed, and a critique from which no chosen dimension
parsed has reward None: a parse failure is never the worst score. A dimension that is missing (cut
off, never written) is left out like N/A unless `require_all`. A critique with an invalid dimension
(a value outside 1-4 or not a number, see `rr_core.parser.read_score`) has reward None, whichever
dimensions the reward uses: upstream clamps such values, the project does not make a score of them,
nor trusts the rest of a critique that wrote one. Which dimensions count is an explicit setting
recorded with every reward (upstream's edit RL leaves image faithfulness out; its README example
keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rr_core.config import reject_unknown_keys
from rr_core.critique import Critique, in_range
from rr_core.rubric import SCORE_MAX, SCORE_MIN, Task, dimension_keys


@dataclass(frozen=True)
class RewardSpec:
    """Which dimensions make the reward, and their weights.

    dimensions: keys to average; None means every dimension of the critique's task.
    weights: one weight per key of `dimensions` (needs `dimensions`); None means equal weights.
    require_all: when True, a chosen dimension that is missing (not N/A) makes the reward None.
    """

    dimensions: tuple[str, ...] | None = None
    weights: tuple[float, ...] | None = None
    require_all: bool = False

    def __post_init__(self) -> None:
        if self.dimensions is not None and not self.dimensions:
            raise ValueError("a reward needs at least one dimension (or None for all of them)")
        if self.weights is not None:
            if self.dimensions is None or len(self.weights) != len(self.dimensions):
                raise ValueError("weights need an explicit dimension list of the same length")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative with a positive sum")

    def keys_for(self, task: Task) -> tuple[str, ...]:
        """The chosen dimensions that exist for `task` (image faithfulness only exists for edits)."""
        keys = dimension_keys(task)
        if self.dimensions is None:
            return keys
        unknown = set(self.dimensions) - set(dimension_keys(Task.T2I)) - set(dimension_keys(Task.EDIT))
        if unknown:
            raise ValueError(f"unknown reward dimensions {sorted(unknown)}")
        return tuple(k for k in self.dimensions if k in keys)

    def to_dict(self) -> dict[str, Any]:
        return {"dimensions": list(self.dimensions) if self.dimensions else None,
                "weights": list(self.weights) if self.weights else None,
                "require_all": self.require_all}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "RewardSpec":
        data = data or {}
        reject_unknown_keys(cls, data, "reward")
        dims = data.get("dimensions")
        weights = data.get("weights")
        return cls(tuple(dims) if dims else None, tuple(float(w) for w in weights) if weights else None,
                   bool(data.get("require_all", False)))


UPSTREAM_EDIT_RL = RewardSpec(dimensions=("text_faithfulness", "physical_quality", "text_rendering"))


def normalize(score: float) -> float:
    """Map a 1-4 score to [0, 1]; a value outside 1-4 is an error, never clamped."""
    if not in_range(score):
        raise ValueError(f"score {score!r} is outside {SCORE_MIN:g}-{SCORE_MAX:g}")
    return (score - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)


def compute_reward(critique: Critique, spec: RewardSpec = RewardSpec()) -> float | None:
    """The reward of a critique under `spec`, or None when nothing it needs was parsed or any
    dimension holds an invalid value."""
    keys = spec.keys_for(critique.task)
    if critique.invalid_keys():
        return None
    weight_of = dict(zip(spec.dimensions, spec.weights)) if spec.weights else {}
    total = weight_sum = 0.0
    for key in keys:
        entry = critique.scores.get(key)
        if entry is not None and entry.not_applicable:
            continue
        if entry is None or entry.score is None:
            if spec.require_all:
                return None
            continue
        weight = weight_of.get(key, 1.0)
        total += weight * normalize(entry.score)
        weight_sum += weight
    if weight_sum == 0:
        return None
    return total / weight_sum


def apply_reward(critique: Critique, spec: RewardSpec = RewardSpec()) -> Critique:
    """A copy of `critique` with its reward and the dimension set that produced it."""
    return replace(critique, reward=compute_reward(critique, spec),
                   reward_dimensions=spec.keys_for(critique.task))
