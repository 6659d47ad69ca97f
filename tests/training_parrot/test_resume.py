"""Distillation checkpoints: a LoRA run of the tiny Qwen3-VL interrupted right after a checkpoint
resumes from it (step, optimizer, scheduler, adapter weights as saved) and ends where an
uninterrupted run with the same seed ends.

What is compared and why: both runs use one config (same seed, same schedule over `max_steps`), so
the resumed run must see the same remaining micro-batches in the same order, with the same dropout
masks (accelerate restores the RNG states) and the same AdamW moments. On CPU with float32 the
arithmetic is then the same sequence of operations, so the per-step losses after the checkpoint
and the final adapter weights are compared exactly (`torch.equal`), not within a tolerance.
"""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator

from rr_core.critics.tiny import ensure_tiny_critic
from tests.training_parrot.conftest import write_sft_dataset
from training.parrot import distill
from training.parrot.distill import DistillConfig, train

pytestmark = pytest.mark.slow

TOTAL, SAVE_EVERY = 6, 3  # 8 samples / batch 2 = 4 steps an epoch: the resume lands mid-epoch 0 and crosses into epoch 1


class Interrupted(Exception):
    """Raised by the test right after a checkpoint is written, as a killed job would stop."""


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def optimizer_moments(optimizer) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in state.items()} for state in optimizer.state_dict()["state"].values()]


def assert_same(left: dict | list, right: dict | list) -> None:
    pairs = zip(left, right, strict=True) if isinstance(left, list) else (
        (left[k], right[k]) for k in sorted(left))
    assert isinstance(left, list) or sorted(left) == sorted(right)
    for a, b in pairs:
        if isinstance(a, dict):
            assert_same(a, b)
        else:
            assert torch.equal(a, b)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_sft_dataset(tmp_path_factory.mktemp("resume"))


def config_for(dataset, output_dir) -> DistillConfig:
    # lora_dropout > 0 on purpose: the dropout masks after the resume depend on the restored RNG state.
    return DistillConfig(base_model=str(ensure_tiny_critic()), dataset=str(dataset), output_dir=str(output_dir),
                         method="lora", lora_r=4, lora_dropout=0.1, learning_rate=5e-3, warmup_ratio=0.5,
                         max_steps=TOTAL, batch_size=2, grad_accum=1, max_length=2560, save_every=SAVE_EVERY,
                         keep_checkpoints=1, merge=False, gradient_checkpointing=False, seed=3)


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(dataset, tmp_path, monkeypatch):
    # 1. The reference: all TOTAL steps in one go.
    full = train(config_for(dataset, tmp_path / "full"))
    assert full["steps"] == TOTAL and len(full["losses"]) == TOTAL
    assert (tmp_path / "full" / "checkpoints" / f"step-{TOTAL}").is_dir()  # a finished run is resumable too

    # 2. The same run killed right after its step-SAVE_EVERY checkpoint; what was saved is recorded.
    saved: dict = {}
    save = distill._save_checkpoint

    def save_then_stop(accelerator, output_dir, step, total_steps, keep):
        save(accelerator, output_dir, step, total_steps, keep)
        saved.update(step=step, weights=trainable(accelerator._models[0]),
                     moments=optimizer_moments(accelerator._optimizers[0]),
                     lr=accelerator._schedulers[0].get_last_lr())
        raise Interrupted

    monkeypatch.setattr(distill, "_save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        train(config_for(dataset, tmp_path / "cut"))
    assert saved["step"] == SAVE_EVERY
    monkeypatch.setattr(distill, "_save_checkpoint", save)

    # 3. The rerun loads that checkpoint: the state right after loading equals what was saved.
    loaded: dict = {}
    load_state = Accelerator.load_state

    def load_and_record(self, input_dir=None, **kwargs):
        result = load_state(self, input_dir, **kwargs)
        loaded.update(weights=trainable(self._models[0]), moments=optimizer_moments(self._optimizers[0]),
                      lr=self._schedulers[0].get_last_lr(), scheduler_step=self._schedulers[0].scheduler.last_epoch)
        return result

    monkeypatch.setattr(Accelerator, "load_state", load_and_record)
    resumed = train(config_for(dataset, tmp_path / "cut"))
    assert_same(loaded["weights"], saved["weights"])
    assert_same(loaded["moments"], saved["moments"])
    assert loaded["lr"] == saved["lr"] and loaded["scheduler_step"] == SAVE_EVERY

    # 4. It continues from the saved step and ends exactly where the uninterrupted run ended.
    assert resumed["steps"] == TOTAL and resumed["resumed_from_step"] == SAVE_EVERY
    assert resumed["losses"] == full["losses"][SAVE_EVERY:]
    log = [json.loads(line) for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, TOTAL + 1))  # the log continues, no step twice
    from safetensors.torch import load_file

    final_full = load_file(tmp_path / "full" / "adapter" / "adapter_model.safetensors")
    final_cut = load_file(tmp_path / "cut" / "adapter" / "adapter_model.safetensors")
    assert_same(final_cut, final_full)
    assert sum(v.abs().sum() for k, v in final_full.items() if "lora_B" in k) > 0  # the adapter did train

    # 5. Rerunning a finished run resumes at its end and trains nothing more.
    again = train(config_for(dataset, tmp_path / "cut"))
    assert again["steps"] == TOTAL and again["losses"] == [] and again["resumed_from_step"] == TOTAL
