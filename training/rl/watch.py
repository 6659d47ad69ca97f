"""Reward-hacking watch: compare each evaluation with the first one and warn on suspicious trends.

Warnings: the reward rose while one of its dimensions fell; pixel standard deviation or the
diversity within a prompt's images (mean pairwise distance) fell below a fraction of its start
(washed-out or collapsed images score well with some critics).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


def image_stat_values(groups: list[list[Image.Image]]) -> tuple[list[float], list[float]]:
    """Each image's pixel std (on [0, 1]) and each same-size pair's RMS distance within a group."""
    stds, distances = [], []
    for images in groups:
        arrays = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images]
        stds += [float(a.std()) for a in arrays]
        for i in range(len(arrays)):
            for j in range(i + 1, len(arrays)):
                if arrays[i].shape == arrays[j].shape:
                    distances.append(float(np.sqrt(((arrays[i] - arrays[j]) ** 2).mean())))
    return stds, distances


def stats_of(stds: list[float], distances: list[float]) -> dict[str, float]:
    """Pixel std (mean over images) and diversity (mean pairwise distance within a group)."""
    return {"pixel_std": float(np.mean(stds)) if stds else 0.0,
            "diversity": float(np.mean(distances)) if distances else 0.0}


@dataclass
class HackingWatch:
    collapse_fraction: float = 0.5
    min_delta: float = 0.02
    start: dict[str, float] | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def update(self, step: int, reward: float, dimensions: dict[str, float], stats: dict[str, float]) -> list[str]:
        """Record one evaluation; return the warnings it raises (also logged)."""
        point = {"step": step, "reward": reward, **{f"dim/{k}": v for k, v in dimensions.items()}, **stats}
        self.history.append(point)
        if self.start is None:
            self.start = point
            return []
        warnings = []
        if reward > self.start["reward"] + self.min_delta:
            for key, value in dimensions.items():
                before = self.start.get(f"dim/{key}")
                if before is not None and value < before - self.min_delta * 3:
                    warnings.append(f"reward rose {self.start['reward']:.3f} -> {reward:.3f} while {key} fell "
                                    f"{before:.2f} -> {value:.2f}")
        for key in ("pixel_std", "diversity"):
            before = self.start.get(key, 0.0)
            if before > 0 and stats.get(key, before) < self.collapse_fraction * before:
                warnings.append(f"{key} fell to {stats[key]:.4f}, below {self.collapse_fraction:.0%} of its start "
                                f"{before:.4f}: images may be collapsing")
        for warning in warnings:
            logger.warning("reward-hacking watch at step %d: %s", step, warning)
        return warnings

    def state_dict(self) -> dict:
        return {"start": self.start, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.start = state.get("start")
        self.history = list(state.get("history", []))
