"""The SDE sampler against the real tiny FLUX transformer: on-policy ratio 1, gradients only in LoRA."""

import torch

from training.rl.lora import TRAINED, use_adapter
from training.rl.sampling import sample, sde_step


def test_on_policy_ratio_is_one_and_gradients_reach_only_lora(make_trainer):
    trainer = make_trainer("grpo")
    generator = torch.Generator().manual_seed(0)
    group = trainer.rollout(trainer.prompts[0], generator, 3, sde=True)
    traj, old_lp = group.rollout.latents, group.rollout.log_probs  # (3, T+1, S, C), (3, T)
    assert traj.shape[:2] == (3, 5) and old_lp.shape == (3, 4)
    trainer.transformer.train()
    sigmas = trainer.sigmas
    total = 0
    for j in range(4):
        sigma, sigma_next = sigmas[j].expand(3), sigmas[j + 1].expand(3)
        v = trainer.model.forward(traj[:, j], sigma, group.cond)
        step = sde_step(v, traj[:, j], sigma, sigma_next, float(sigmas[1]), 0.7, traj[:, j + 1])
        ratio = torch.exp(step.log_prob - old_lp[:, j])
        assert torch.allclose(ratio, torch.ones(3), atol=1e-5)
        total = total + step.log_prob.sum()
    total.backward()
    with_grad = {n for n, p in trainer.transformer.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in n and f".{TRAINED}." in n for n in with_grad)
    lora_b = [p for n, p in trainer.transformer.named_parameters() if "lora_B" in n and p.grad is not None]
    assert any(float(p.grad.abs().sum()) > 0 for p in lora_b)


def test_shared_noise_gives_one_start_for_the_group(make_trainer):
    trainer = make_trainer("grpo", sampling__shared_noise=True)
    group = trainer.rollout(trainer.prompts[0], torch.Generator().manual_seed(0), 3, sde=True)
    start = group.rollout.latents[:, 0]
    assert torch.equal(start[0], start[1]) and torch.equal(start[1], start[2])
    assert not torch.equal(group.rollout.final[0], group.rollout.final[1])  # the SDE noise differs


def test_ode_sampler_keeps_only_clean_latents_and_is_deterministic(make_trainer):
    trainer = make_trainer("nft")
    item = trainer.prompts[1]
    a = trainer.rollout(item, torch.Generator().manual_seed(3), 2, sde=False)
    b = trainer.rollout(item, torch.Generator().manual_seed(3), 2, sde=False)
    assert a.rollout.latents is None and a.rollout.log_probs is None
    assert torch.equal(a.rollout.final, b.rollout.final) and len(a.images) == 2


def test_kontext_edit_rollout_concatenates_the_source(make_trainer):
    trainer = make_trainer("grpo", task="edit")
    item = trainer.prompts[0]
    assert item.source_image is not None
    group = trainer.rollout(item, torch.Generator().manual_seed(0), 2, sde=True)
    seq = group.rollout.final.shape[1]
    assert group.cond.source_latents.shape[1] == seq  # 64x64 source -> as many patches as the output
    assert group.cond.image_ids.shape[0] == 2 * seq
    with torch.no_grad(), use_adapter(trainer.transformer, TRAINED):
        other = sample(trainer.model, group.cond.take(slice(0, 1)), group.rollout.latents[:1, 0],
                       trainer.sigmas, sde=False)
    assert other.final.shape == group.rollout.final[:1].shape
