"""Group-relative advantages: each image's reward against the other images of its group.

A group is one prompt AND one source image (hashed by pixels), not the prompt text alone: the same
instruction on two photos is two groups. Masked images (failed critiques) take no part in the
statistics and get advantage 0. A group whose valid rewards are all equal (or that has fewer than two
valid rewards) carries no signal and is filtered out of the update.
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
    used: torch.Tensor  # (N,) bool: valid reward in a group with signal
    filtered_groups: int  # groups dropped for having no signal
    groups: int


def compute_advantages(rewards: list[float | None], keys: list[tuple[str, str]], std_scope: str = "group",
                       clip: float = 5.0, global_std: float | None = None) -> Advantages:
    """(reward - group mean) / std, std per group or over all valid rewards, clipped to [-clip, clip].

    `global_std` overrides the std of this batch's valid rewards for std_scope "global" (with several
    processes, the std over every process's rewards: see `global_reward_std`).
    """
    if len(rewards) != len(keys):
        raise ValueError("one group key per reward")
    if std_scope not in ("group", "global"):
        raise ValueError(f"std_scope must be group or global, got {std_scope!r}")
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
        group_std = float(group.std(unbiased=False))
        if len(indices) < 2 or group_std < EPS:
            filtered += 1
            continue
        std = group_std if std_scope == "group" else global_std
        values[indices] = ((group - group.mean()) / (std + EPS)).clamp(-clip, clip)
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
