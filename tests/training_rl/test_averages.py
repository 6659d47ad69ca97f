"""DiffusionNFT's two averages, kept apart as in the reference: the old (sampling) policy's schedule
and the parameter average used for evaluation and saving."""

import pytest
import torch

from training.rl.config import rl_config
from training.rl.lora import AdapterAverage, average_decay, old_decay, update_old


def test_old_policy_decay_is_min_of_a_ramp_and_a_half():
    assert [old_decay(n) for n in (0, 1, 10, 250, 499, 500, 5000)] == pytest.approx(
        [0.0, 0.001, 0.01, 0.25, 0.499, 0.5, 0.5])
    assert old_decay(10, per_step=0.01, max_decay=0.05) == pytest.approx(0.05)


def test_average_decay_warms_up_to_its_ceiling():
    assert average_decay(0, 0.9) == pytest.approx(0.1)
    assert average_decay(1, 0.9) == pytest.approx(2 / 11)
    assert average_decay(80, 0.9) == pytest.approx(0.9)  # 81 / 90 = 0.9
    assert average_decay(1000, 0.9) == pytest.approx(0.9)


class _Weight(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))


class _Adapters(torch.nn.Module):
    """Parameters named like peft's (block.lora_A.default.weight): a trained and an old copy of one matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.block = torch.nn.ModuleDict({"lora_A": torch.nn.ModuleDict({"default": _Weight(), "old": _Weight()})})


def test_update_old_and_the_average_follow_their_formulas():
    model = _Adapters()
    trained, old = model.block["lora_A"]["default"].weight, model.block["lora_A"]["old"].weight
    average = AdapterAverage(model, 0.9)  # starts at the trained weights (zeros)
    with torch.no_grad():
        trained.copy_(torch.tensor([1.0, 2.0]))
    update_old(model, old_decay(1))  # old <- 0.001 * 0 + 0.999 * trained
    assert old.tolist() == pytest.approx([0.999, 1.998])
    average.update(model, 1)  # average += (1 - 2/11) * (trained - average)
    (averaged,) = average.tensors.values()
    assert averaged.tolist() == pytest.approx([9 / 11, 18 / 11])
    with average.applied(model):
        assert trained.tolist() == pytest.approx([9 / 11, 18 / 11])
    assert trained.tolist() == [1.0, 2.0]  # the trained weights come back


def test_reference_defaults_and_the_tiny_trainer_uses_the_sampler_levels(make_trainer):
    a = rl_config({"data": "x.jsonl"}).algorithm
    assert (a.old_decay_per_step, a.old_decay_max, a.ema_decay, a.std_scope, a.min_group_std,
            a.max_group_mean, a.policy_loss_scale, a.kl_beta, a.nft_loss_cfg) == \
        (0.001, 0.5, 0.9, "global", 0.05, 0.9, 5.0, 1e-4, False)
    assert rl_config({"data": "x.jsonl", "sampling": {"steps": 15}}).nft_timesteps() == 14
    trainer = make_trainer("nft", sampling__steps=4, algorithm__nft_timesteps=3,
                           algorithm__nft_noise_levels="sampler")
    levels = trainer.nft_levels(5, torch.Generator().manual_seed(0))  # (5 images, 3 levels)
    sampler = set(trainer.sigmas[:4].tolist())
    assert levels.shape == (5, 3)
    for row in levels.tolist():
        assert len(set(row)) == 3 and set(row) <= sampler
    with pytest.raises(ValueError, match="exceeds the sampler's 4 noise levels"):
        rl_config({"data": "x.jsonl", "sampling": {"steps": 4}, "algorithm": {"nft_timesteps": 5}})


def test_checkpoints_hold_the_average_and_training_continues_from_the_trained_weights(make_trainer):
    from safetensors.torch import load_file

    from training.rl.lora import TRAINED, adapter_tensors

    trainer = make_trainer("nft", algorithm__ema_decay=0.9, sampling__prompts_per_step=1, sampling__group_size=2,
                           algorithm__old_decay_max=0.5)
    trainer._open_logs()
    metrics = trainer.train_step()
    assert trainer.updates == 1 and metrics["old_decay"] == pytest.approx(0.001)
    trained = {k: v.detach().clone() for k, v in adapter_tensors(trainer.transformer, TRAINED).items()}
    averaged = {k: v.clone() for k, v in trainer.average.tensors.items()}
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained)
    folder = trainer.save()
    saved = load_file(folder / "lora" / "pytorch_lora_weights.safetensors")
    now = adapter_tensors(trainer.transformer, TRAINED)
    assert all(torch.equal(trained[k], now[k]) for k in trained)  # the trained weights came back
    # The saved adapter is the average, tensor by tensor.
    assert set(saved) == {f"transformer.{k}" for k in averaged}
    assert all(torch.allclose(saved[f"transformer.{k}"].float(), v) for k, v in averaged.items())
    state = torch.load(folder / "state.pt", weights_only=False)
    assert state["updates"] == 1 and set(state["average"]) == set(averaged)
