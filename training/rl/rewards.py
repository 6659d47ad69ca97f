"""Rollout rewards from any critic backend, under the recorded RewardSpec.

Which critiques count is a setting (`critic.accept`):
* "scores" (the default, as the reference): every dimension of the task was read (a score, or N/A
  where the rubric allows it) and none holds an invalid value; the refinement section may be cut off.
  The reward reads only the scores, so dropping such a critique would bias the update against long
  critiques (the ones most often cut at max_tokens).
* "complete": the critique parsed completely (status ok), refined request included.
A critique that does not count is retried, and if it still does not, its image is masked out of the
update (never reward 0). Per-dimension scores are kept for the hacking watch and the logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from PIL import Image

from rr_core.critics.base import CritiqueRequest
from rr_core.critique import Critique, ParseStatus
from rr_core.reward import RewardSpec, compute_reward
from rr_core.rubric import Task, dimensions

logger = logging.getLogger(__name__)


@dataclass
class RewardBatch:
    """Rewards of a batch of images, in order; None marks an image masked out of the update."""

    rewards: list[float | None]
    dimensions: dict[str, list[float | None]] = field(default_factory=dict)
    statuses: list[str] = field(default_factory=list)
    attempts: int = 1

    @property
    def valid(self) -> list[bool]:
        return [r is not None for r in self.rewards]

    @property
    def failure_share(self) -> float:
        return 1 - sum(self.valid) / len(self.rewards) if self.rewards else 0.0

    def dimension_means(self) -> dict[str, float]:
        """Mean of each dimension over the images whose reward counts (N/A and missing left out)."""
        means = {}
        for key, values in self.dimensions.items():
            kept = [v for v, ok in zip(values, self.valid) if ok and v is not None]
            if kept:
                means[key] = sum(kept) / len(kept)
        return means


ACCEPT = ("scores", "complete")


def all_scores_read(critique: Critique) -> bool:
    """True when every dimension of the critique's task holds a valid score or an allowed N/A."""
    if critique.invalid_keys():
        return False
    for dimension in dimensions(critique.task):
        entry = critique.scores.get(dimension.key)
        if entry is None or not (entry.valid or (entry.not_applicable and not entry.invalid)):
            return False
    return True


def usable(critique: Critique, spec: RewardSpec, accept: str = "scores") -> float | None:
    """The reward of a critique, or None unless it counts under `accept` (see the module docstring)."""
    if accept not in ACCEPT:
        raise ValueError(f"accept must be one of {', '.join(ACCEPT)}, got {accept!r}")
    if accept == "complete" and critique.status is not ParseStatus.OK:
        return None
    if accept == "scores" and not all_scores_read(critique):
        return None
    return compute_reward(critique, spec)


class RewardScorer:
    """Critique images with `critic` (anything with critique_many) and turn critiques into rewards."""

    def __init__(self, critic, spec: RewardSpec, task: Task | str, retries: int = 2, accept: str = "scores") -> None:
        if accept not in ACCEPT:
            raise ValueError(f"accept must be one of {', '.join(ACCEPT)}, got {accept!r}")
        self.critic = critic
        self.accept = accept
        self.spec = spec
        self.task = Task.parse(task)
        self.retries = retries
        self.keys = spec.keys_for(self.task)

    def _critique(self, requests: list[CritiqueRequest]) -> list[Critique]:
        try:
            return self.critic.critique_many(requests)
        except Exception as exc:  # a server down or a backend crash fails this attempt, not the run
            logger.warning("critic call failed for %d images: %s", len(requests), exc)
            return [Critique.failure(self.task, f"critic error: {exc}") for _ in requests]

    def score(self, prompts: list[str], images: list[Image.Image],
              sources: list[Image.Image | None]) -> RewardBatch:
        """One reward per image (None when its critique failed after all retries)."""
        if not len(prompts) == len(images) == len(sources):
            raise ValueError("prompts, images and sources must have the same length")
        requests = [CritiqueRequest(self.task, p, im, s) for p, im, s in zip(prompts, images, sources)]
        critiques = self._critique(requests)
        attempts = 1
        for _ in range(self.retries):
            todo = [i for i, c in enumerate(critiques) if usable(c, self.spec, self.accept) is None]
            if not todo:
                break
            attempts += 1
            for i, critique in zip(todo, self._critique([requests[i] for i in todo])):
                critiques[i] = critique
        rewards = [usable(c, self.spec, self.accept) for c in critiques]
        dimensions = {key: [c.score(key) for c in critiques] for key in self.keys}
        return RewardBatch(rewards, dimensions, [c.status.value for c in critiques], attempts)
