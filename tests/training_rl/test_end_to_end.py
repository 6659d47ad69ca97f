"""A short DiffusionNFT run on the tiny pipeline with a critic that prefers brighter images."""

import json

import pytest
import torch

from rr_core.generators import GenerationRequest, load_generator
from rr_core.generators.tiny import tiny_generator_config
from training.rl.config import rl_config
from training.rl.lora import TRAINED, adapter_tensors
from training.rl.trainer import RLTrainer

from .conftest import brightness, tiny_values


@pytest.mark.slow
def test_short_run_raises_reward_checkpoints_resumes_and_loads_in_the_generator(tmp_path, bright_critic):
    values = tiny_values(tmp_path, "nft")
    trainer = RLTrainer(rl_config(values), critic=bright_critic)
    final = trainer.train()
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [m["eval/reward"] for m in metrics if "eval/reward" in m]
    assert len(evals) == 2 and evals[-1] > evals[0] + 0.01, evals
    assert all(m["reward/failure_share"] == 0.0 for m in metrics if "reward/failure_share" in m)
    assert {"eval/dim/text_faithfulness", "eval/pixel_std", "eval/diversity"} <= set(metrics[0])
    assert (run / "checkpoints" / "step-000002" / "state.pt").is_file()
    assert (run / "checkpoints" / "step-000004" / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert len(list((run / "samples" / "step-000004").glob("*.png"))) == 4
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    trained = {k: v.detach().clone() for k, v in adapter_tensors(trainer.transformer, TRAINED).items()}

    # Resume: a new trainer picks up step 4's adapter and continues to step 5.
    values["max_steps"] = 5
    resumed = RLTrainer(rl_config(values), critic=bright_critic)
    resumed._open_logs()
    resumed.resume(resumed.latest_checkpoint())
    assert resumed.step == 4
    now = adapter_tensors(resumed.transformer, TRAINED)
    assert all(torch.equal(trained[k], now[k]) for k in trained)
    resumed.train()
    assert resumed.step == 5 and (run / "checkpoints" / "step-000005" / "state.pt").is_file()

    # The saved adapter loads through rr_core.generators and makes brighter images than the base.
    generator = load_generator(tiny_generator_config("t2i"))
    request = GenerationRequest(prompt="a red cat", seed=7, steps=4, num_candidates=2)
    base = generator.generate(request)
    generator.load_lora(final)
    tuned = generator.generate(request)
    assert any(a.tobytes() != b.tobytes() for a, b in zip(base, tuned))
    assert sum(map(brightness, tuned)) > sum(map(brightness, base))


def test_one_grpo_step_on_kontext_edits_updates_the_adapter(make_trainer):
    trainer = make_trainer("grpo", task="edit", sampling__prompts_per_step=1, sampling__group_size=3,
                           sampling__steps=2, algorithm__timestep_fraction=0.5, algorithm__kl_beta=0.1)
    before = {k: v.detach().clone() for k, v in adapter_tensors(trainer.transformer, TRAINED).items()}
    metrics = trainer.train_step()
    assert metrics["ratio"] == pytest.approx(1.0, abs=1e-5) and metrics["reward/failure_share"] == 0.0
    after = adapter_tensors(trainer.transformer, TRAINED)
    assert any(not torch.equal(before[k], after[k]) for k in before)


class _Rank:
    """The trainer's accelerator as process `index` of `count` sees it (everything else unchanged)."""

    def __init__(self, accelerator, index: int, count: int) -> None:
        self._accelerator, self.process_index, self.num_processes = accelerator, index, count

    def __getattr__(self, name):
        return getattr(self._accelerator, name)


def test_evaluation_is_shared_out_across_processes_with_the_single_process_result(make_trainer, monkeypatch):
    trainer = make_trainer(eval__num_prompts=3, eval__images_per_prompt=2)
    whole = trainer.evaluate()
    single = trainer.accelerator
    shards, rendered = [], []

    def gather(local):
        shards.extend(local)
        return list(shards)

    monkeypatch.setattr(trainer, "_gather", gather)
    monkeypatch.setattr(trainer, "rollout", lambda item, *a, **k: rendered.append(item) or RLTrainer.rollout(
        trainer, item, *a, **k))
    trainer.accelerator = _Rank(single, 1, 2)  # rank 1 first: its shard is there when rank 0 merges
    trainer.evaluate()
    trainer.accelerator = _Rank(single, 0, 2)
    merged = trainer.evaluate()
    assert len(rendered) == 3, "each held-out prompt was rendered by one process only"
    assert merged.keys() == whole.keys()
    for key, value in whole.items():
        assert merged[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
