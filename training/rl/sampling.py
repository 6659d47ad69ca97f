"""Rollouts: the plain (ODE) sampler for DiffusionNFT and the SDE sampler with per-step
log-probabilities for Flow-GRPO, written over a model adapter's forward.

Rectified flow: x_sigma = (1 - sigma) x0 + sigma eps and the transformer predicts v = eps - x0.
The ODE (Euler) step is x' = x + (sigma' - sigma) v. Flow-GRPO's SDE with the same marginals adds
noise of scale std_t = a * sqrt(sigma / (1 - sigma)) (a = noise_level):

    mean = x (1 + std_t^2 dt / (2 sigma)) + v (1 + std_t^2 (1 - sigma) / (2 sigma)) dt,  dt = sigma' - sigma < 0
    x'   = mean + std_t sqrt(-dt) z,  z ~ N(0, I)

so each step is a Gaussian and its log-density is known in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from training.rl.models import ModelAdapter, ModelConditioning


@dataclass
class SdeStep:
    mean: torch.Tensor  # (B, S, C)
    std: torch.Tensor  # (B, 1, 1) standard deviation of x' given x
    sample: torch.Tensor  # (B, S, C)
    log_prob: torch.Tensor  # (B,) mean over the latent elements of the per-element log-density


def sde_step(velocity: torch.Tensor, latents: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
             sigma_max: float, noise_level: float, sample: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> SdeStep:
    """One Flow-GRPO SDE step from `latents` at sigma to sigma_next (both (B,)).

    With `sample` given, its log-probability under the step is returned instead of drawing a new one
    (how the update re-evaluates recorded trajectories).
    """
    velocity, latents = velocity.float(), latents.float()
    sigma = sigma.float().view(-1, 1, 1)
    sigma_next = sigma_next.float().view(-1, 1, 1)
    dt = sigma_next - sigma  # (B, 1, 1), negative
    std_t = noise_level * torch.sqrt(sigma / (1 - torch.where(sigma >= 1, torch.full_like(sigma, sigma_max), sigma)))
    mean = latents * (1 + std_t**2 / (2 * sigma) * dt) + velocity * (1 + std_t**2 * (1 - sigma) / (2 * sigma)) * dt
    std = std_t * torch.sqrt(-dt)
    if sample is None:
        noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device)
        sample = mean + std * noise
    sample = sample.float()
    log_prob = -((sample.detach() - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return SdeStep(mean=mean, std=std, sample=sample, log_prob=log_prob.mean(dim=(1, 2)))


def gaussian_kl(mean_p: torch.Tensor, mean_q: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_p, std^2) || N(mean_q, std^2)) per element, averaged per sample: (B,)."""
    return ((mean_p - mean_q) ** 2 / (2 * std**2)).mean(dim=(1, 2))


@dataclass
class Rollout:
    """One group's samples. `latents` holds the whole trajectory for the SDE sampler, else only x0."""

    final: torch.Tensor  # (B, S, C) clean latents
    latents: torch.Tensor | None  # (B, T + 1, S, C) x at each level, SDE only
    log_probs: torch.Tensor | None  # (B, T) log-probability of each SDE step, SDE only
    sigmas: torch.Tensor  # (T + 1,)


@torch.no_grad()
def sample(adapter: ModelAdapter, cond: ModelConditioning, noise: torch.Tensor, sigmas: torch.Tensor, sde: bool,
           noise_level: float = 0.7, generator: torch.Generator | None = None) -> Rollout:
    """Denoise `noise` (B, S, C) along `sigmas` (T + 1,) with the ODE, or the SDE keeping log-probs."""
    device = adapter.device
    latents = noise.to(device).float()
    batch = latents.shape[0]
    trajectory, log_probs = [latents], []
    sigma_max = float(sigmas[1]) if len(sigmas) > 1 else 1.0
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i].expand(batch).to(device)
        sigma_next = sigmas[i + 1].expand(batch).to(device)
        velocity = adapter.forward(latents, sigma, cond)  # (B, S, C)
        if sde:
            step = sde_step(velocity, latents, sigma, sigma_next, sigma_max, noise_level, generator=generator)
            latents = step.sample
            trajectory.append(latents)
            log_probs.append(step.log_prob)
        else:
            latents = latents + (sigma_next - sigma).view(-1, 1, 1) * velocity
    if not sde:
        return Rollout(final=latents, latents=None, log_probs=None, sigmas=sigmas)
    return Rollout(final=latents, latents=torch.stack(trajectory, dim=1), log_probs=torch.stack(log_probs, dim=1),
                   sigmas=sigmas)
