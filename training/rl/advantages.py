"""Group-relative advantages: each image's reward against the other images of its group.

A group is one prompt AND one source image (hashed by pixels), not the prompt text alone: the same
instruction on two photos is two groups. Masked images (failed critiques) take no part in the
statistics and get advantage 0; a group with fewer than two valid rewards is left out.

As the reference (Flow-GRPO's per-prompt stat tracker with DiffusionNFT's settings):
    advantage = (reward - group mean) / (std + 1e-4), clipped to [-clip, clip]
with std the population std of every valid reward of the step ("global", the default) or of the
group ("group"). A group is masked out of the update when its normaliser (std + 1e-4) is at most
`min_std` (0.05: no signal to learn from) or its mean is at least `max_mean` (0.9: the prompt is
already solved; training on it only pushes rewards the critic saturates).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

EPS = 1e-4


def image_hash(image: Image.Image | None) -> str:
    """A content hash of an image (mode, size and pixels); "" for no image."""
    if image is None:
        return ""
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def group_key(prompt: str, source: Image.Image | None) -> tuple[str, str]:
    return prompt, image_hash(source)


@dataclass
class Advantages:
    values: torch.Tensor  # (N,) clipped advantages, 0 where not used
    used: torch.Tensor  # (N,) bool: valid reward in a group that is not masked
    filtered_groups: int  # groups masked (too few valid rewards, normaliser <= min_std, mean >= max_mean)
    groups: int


STD_SCOPES = ("global", "group")
MIN_STD = 0.05
MAX_MEAN = 0.9


def compute_advantages(rewards: list[float | None], keys: list[tuple[str, str]], std_scope: str = "global",
                       clip: float = 5.0, global_std: float | None = None, min_std: float = MIN_STD,
                       max_mean: float | None = MAX_MEAN) -> Advantages:
    """(reward - group mean) / (std + 1e-4), std over all valid rewards or per group, clipped to [-clip, clip].

    `global_std` overrides the std of this batch's valid rewards for std_scope "global" (with several
    processes, the std over every process's rewards: see `global_reward_std`). `min_std` and
    `max_mean` mask groups as the module docstring says (max_mean None: never by mean).
    """
    if len(rewards) != len(keys):
        raise ValueError("one group key per reward")
    if std_scope not in STD_SCOPES:
        raise ValueError(f"std_scope must be global or group, got {std_scope!r}")
    values = torch.zeros(len(rewards), dtype=torch.float64)
    used = torch.zeros(len(rewards), dtype=torch.bool)
    valid = [i for i, r in enumerate(rewards) if r is not None]
    all_valid = torch.tensor([rewards[i] for i in valid], dtype=torch.float64)
    if global_std is None:
        global_std = float(all_valid.std(unbiased=False)) if len(valid) > 1 else 0.0
    members: dict[tuple[str, str], list[int]] = {}
    for i in valid:
        members.setdefault(keys[i], []).append(i)
    filtered = 0
    for indices in members.values():
        group = torch.tensor([rewards[i] for i in indices], dtype=torch.float64)
        normaliser = (float(group.std(unbiased=False)) if std_scope == "group" else global_std) + EPS
        mean = float(group.mean())
        if len(indices) < 2 or normaliser <= min_std or (max_mean is not None and mean >= max_mean):
            filtered += 1
            continue
        values[indices] = ((group - mean) / normaliser).clamp(-clip, clip)
        used[indices] = True
    groups = len(set(keys))
    return Advantages(values.float(), used, filtered + (groups - len(members)), groups)


def global_reward_std(rewards: list[float | None], gather: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """The std of the valid rewards of every process; `gather` is `accelerator.gather` (each process
    contributes the same number of rewards, failed critiques as NaN, which are left out)."""
    local = torch.tensor([math.nan if r is None else r for r in rewards], dtype=torch.float64)
    everything = gather(local)
    valid = everything[~torch.isnan(everything)]
    return float(valid.std(unbiased=False)) if valid.numel() > 1 else 0.0
