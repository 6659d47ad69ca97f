"""Rollout rewards from any critic backend, under the recorded RewardSpec.

Only a critique that parsed completely (status ok) with a reward is used: a failed or partial
critique is retried, and if it still fails its image is masked out of the update (never reward 0).
Per-dimension scores are kept for the hacking watch and the logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from PIL import Image

from rr_core.critics.base import CritiqueRequest
from rr_core.critique import Critique, ParseStatus
from rr_core.reward import RewardSpec, compute_reward
from rr_core.rubric import Task

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


def usable(critique: Critique, spec: RewardSpec) -> float | None:
    """The reward of a critique, or None unless it parsed completely and has one."""
    if critique.status is not ParseStatus.OK:
        return None
    return compute_reward(critique, spec)


class RewardScorer:
    """Critique images with `critic` (anything with critique_many) and turn critiques into rewards."""

    def __init__(self, critic, spec: RewardSpec, task: Task | str, retries: int = 2) -> None:
        self.critic = critic
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
            todo = [i for i, c in enumerate(critiques) if usable(c, self.spec) is None]
            if not todo:
                break
            attempts += 1
            for i, critique in zip(todo, self._critique([requests[i] for i in todo])):
                critiques[i] = critique
        rewards = [usable(c, self.spec) for c in critiques]
        dimensions = {key: [c.score(key) for c in critiques] for key in self.keys}
        return RewardBatch(rewards, dimensions, [c.status.value for c in critiques], attempts)
