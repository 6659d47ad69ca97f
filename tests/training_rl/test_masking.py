"""A failed critique is masked: the image it judged changes no gradient, and is not reward 0."""

import torch

from training.rl.advantages import compute_advantages, group_key


def _grads(trainer, groups, adv) -> dict[str, torch.Tensor]:
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.transformer.train()
    trainer.nft_update(groups, adv.values, adv.used, torch.Generator().manual_seed(5))
    return {n: p.grad.clone() for n, p in trainer.transformer.named_parameters() if p.grad is not None}


def test_masked_failed_critique_changes_no_gradient(make_trainer):
    trainer = make_trainer("nft")
    generator = torch.Generator().manual_seed(0)
    groups = [trainer.rollout(item, generator, 3, sde=False) for item in trainer.prompts[:2]]
    keys = [group_key(g.item.prompt, g.item.source_image) for g in groups for _ in g.images]
    rewards = [0.1, None, 0.7, 0.2, 0.5, 0.9]  # image 1's critique failed
    adv = compute_advantages(rewards, keys, "group")
    # Its group is normalized over the two valid images, exactly as if the failed one did not exist.
    alone = compute_advantages([0.1, 0.7], keys[:1] * 2, "group")
    assert adv.values[[0, 2]].tolist() == alone.values.tolist() and not bool(adv.used[1])
    as_zero = compute_advantages([0.1, 0.0, 0.7, 0.2, 0.5, 0.9], keys, "group")
    assert not torch.equal(as_zero.values[[0, 2]], adv.values[[0, 2]])  # reward 0 would have changed it
    before = _grads(trainer, groups, adv)
    groups[0].rollout.final[1] = torch.randn_like(groups[0].rollout.final[1]) * 100  # anything at all
    after = _grads(trainer, groups, adv)
    assert before and before.keys() == after.keys()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert any(float(g.abs().sum()) > 0 for g in before.values())
