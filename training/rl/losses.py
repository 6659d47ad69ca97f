"""The two policy losses, as functions of predictions and log-probabilities (no model code here).

DiffusionNFT (Zheng et al. 2025): from a clean sample x0 and fresh noise at level t,
x_t = (1 - t) x0 + t eps. With the current velocity v_theta and the frozen "old" velocity v_old,
    positive policy  v+ = beta v_theta + (1 - beta) v_old
    negative policy  v- = (1 + beta) v_old - beta v_theta
Each predicts x0 as x_t - t v. An image with optimality r in [0, 1] pulls v+ toward its x0 with weight
r and v- toward it with weight 1 - r (which pushes v_theta away), each squared error divided by its
own detached mean absolute error (adaptive weighting); the policy part is divided by beta and, as
the reference, multiplied by `scale` (its adv_clip_max, 5). KL to the reference is the squared
distance of v_theta to the adapter-disabled velocity.

Flow-GRPO (Liu et al. 2025): PPO's clipped objective on the SDE steps' likelihood ratio, plus the
closed-form KL between the current and the reference Gaussian step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MIN_WEIGHT = 1e-5


@dataclass
class LossParts:
    loss: torch.Tensor
    policy: torch.Tensor
    kl: torch.Tensor


def optimality(advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """DiffusionNFT's r in [0, 1]: 0.5 + clipped advantage / (2 clip)."""
    return advantages.clamp(-clip, clip) / clip / 2 + 0.5


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.dim())))


def nft_loss(velocity: torch.Tensor, old_velocity: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor,
             t: torch.Tensor, r: torch.Tensor, beta: float = 1.0, ref_velocity: torch.Tensor | None = None,
             kl_beta: float = 0.0, scale: float = 1.0) -> LossParts:
    """DiffusionNFT loss over a batch: velocities, x0 and x_t are (B, ...), t and r are (B,).

    loss = scale * mean(r * L+ + (1 - r) * L-) / beta + kl_beta * KL.
    """
    t = t.view(-1, *([1] * (x0.dim() - 1))).float()
    velocity, old_velocity, x0, xt = velocity.float(), old_velocity.detach().float(), x0.float(), xt.float()
    positive = beta * velocity + (1 - beta) * old_velocity
    negative = (1 + beta) * old_velocity - beta * velocity
    x0_positive = xt - t * positive
    x0_negative = xt - t * negative
    with torch.no_grad():
        w_pos = _per_sample((x0_positive - x0).abs()).clamp(min=MIN_WEIGHT)
        w_neg = _per_sample((x0_negative - x0).abs()).clamp(min=MIN_WEIGHT)
    loss_pos = _per_sample((x0_positive - x0) ** 2) / w_pos
    loss_neg = _per_sample((x0_negative - x0) ** 2) / w_neg
    policy = scale * (r * loss_pos + (1 - r) * loss_neg).mean() / beta
    kl = torch.zeros((), device=velocity.device)
    if ref_velocity is not None and kl_beta > 0:
        kl = _per_sample((velocity - ref_velocity.detach().float()) ** 2).mean()
    return LossParts(policy + kl_beta * kl, policy.detach(), kl.detach())


def grpo_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_range: float,
              kl: torch.Tensor | None = None, kl_beta: float = 0.0) -> LossParts:
    """Flow-GRPO loss for one SDE step of a batch: log-probs, advantages and kl are (B,)."""
    ratio = torch.exp(log_prob - old_log_prob.detach())
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    policy = torch.maximum(unclipped, clipped).mean()
    kl_mean = kl.mean() if kl is not None else torch.zeros((), device=log_prob.device)
    loss = policy + kl_beta * kl_mean if kl is not None and kl_beta > 0 else policy
    return LossParts(loss, policy.detach(), kl_mean.detach())
