import math

import pytest
import torch

from training.rl.losses import grpo_loss, nft_loss, optimality
from training.rl.sampling import gaussian_kl, sde_step


def test_sde_log_prob_is_the_gaussian_density():
    torch.manual_seed(0)
    velocity, latents = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    sigma, sigma_next = torch.tensor([1.0, 0.6, 0.3]), torch.tensor([0.8, 0.4, 0.0])
    step = sde_step(velocity, latents, sigma, sigma_next, sigma_max=0.8, noise_level=0.7,
                    generator=torch.Generator().manual_seed(1))
    # Independent density: mean and std written out from the SDE, then torch.distributions.Normal.
    for b in range(3):
        s, s_next = float(sigma[b]), float(sigma_next[b])
        std_t = 0.7 * math.sqrt(s / (1 - (0.8 if s >= 1 else s)))
        dt = s_next - s
        mean = latents[b] * (1 + std_t**2 / (2 * s) * dt) + velocity[b] * (1 + std_t**2 * (1 - s) / (2 * s)) * dt
        expected = torch.distributions.Normal(mean, std_t * math.sqrt(-dt)).log_prob(step.sample[b]).mean()
        assert torch.allclose(step.log_prob[b], expected, atol=1e-5)


def test_gaussian_kl_matches_torch():
    torch.manual_seed(0)
    p, q, std = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.full((2, 1, 1), 0.3)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(p, std),
                                                 torch.distributions.Normal(q, std)).mean(dim=(1, 2))
    assert torch.allclose(gaussian_kl(p, q, std), expected, atol=1e-5)


def _nft_step(r: float) -> tuple[float, float]:
    """Error of the positive x0 prediction before and after one gradient step on the NFT loss."""
    torch.manual_seed(0)
    x0, eps = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    t = torch.tensor([0.5, 0.7])
    xt = (1 - t.view(-1, 1, 1)) * x0 + t.view(-1, 1, 1) * eps
    velocity = torch.nn.Parameter(torch.randn(2, 6, 4))
    old = velocity.detach().clone()

    def error() -> float:
        return float(((xt - t.view(-1, 1, 1) * velocity.detach() - x0) ** 2).mean())

    before = error()
    loss = nft_loss(velocity, old, x0, xt, t, torch.full((2,), r), beta=1.0).loss
    loss.backward()
    with torch.no_grad():
        velocity -= 0.05 * velocity.grad
    return before, error()


def test_nft_reward_one_moves_toward_the_positive_target():
    before, after = _nft_step(1.0)
    assert after < before


def test_nft_reward_zero_moves_away_from_it():
    before, after = _nft_step(0.0)
    assert after > before


def test_optimality_maps_clipped_advantage_to_unit_interval():
    assert optimality(torch.tensor([-10.0, 0.0, 2.5, 10.0]), clip=5.0).tolist() == [0.0, 0.5, 0.75, 1.0]


def test_grpo_loss_clips_the_ratio():
    old = torch.zeros(2)
    new = torch.log(torch.tensor([1.5, 0.5]))
    adv = torch.tensor([1.0, -1.0])
    parts = grpo_loss(new, old, adv, clip_range=0.2)
    # positive advantage: min(1.5, 1.2) -> -1.2; negative: max(-(-0.5), -(-0.8)) -> 0.8 (pessimistic)
    assert parts.policy.item() == pytest.approx((-1.2 + 0.8) / 2)


def test_nft_policy_loss_is_scaled_as_the_reference():
    """policy = scale * mean(r L+ + (1 - r) L-) / beta, each L the squared x0 error over its detached mean
    absolute error; the reference's scale is adv_clip_max (5)."""
    torch.manual_seed(0)
    x0, xt = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    v, v_old = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    t, r, beta = torch.tensor([0.3, 0.8]), torch.tensor([0.9, 0.2]), 0.5
    tt = t.view(-1, 1, 1)
    pos = xt - tt * (beta * v + (1 - beta) * v_old) - x0
    neg = xt - tt * ((1 + beta) * v_old - beta * v) - x0
    l_pos = (pos**2).mean(dim=(1, 2)) / pos.abs().mean(dim=(1, 2))
    l_neg = (neg**2).mean(dim=(1, 2)) / neg.abs().mean(dim=(1, 2))
    expected = 5.0 * (r * l_pos + (1 - r) * l_neg).mean() / beta
    parts = nft_loss(v, v_old, x0, xt, t, r, beta=beta, scale=5.0)
    assert parts.policy.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts.loss.item() == pytest.approx(5 * nft_loss(v, v_old, x0, xt, t, r, beta=beta).loss.item(), rel=1e-5)
