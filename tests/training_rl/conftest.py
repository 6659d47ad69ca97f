"""Tiny RL runs: the tiny FLUX pipelines, a scripted critic that likes bright images, one CPU thread
(several threads on a shared 2-core machine are ten times slower for these tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.scripted import ScriptedCritic, critique_text
from training.rl.config import rl_config
from training.rl.trainer import RLTrainer

PROMPTS = ["a red cat", "a blue dog", "a green tree"]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def brightness(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float32).mean() / 255.0)


def bright_script(conversation) -> str:
    """Scores 1-4 in proportion to the judged (last) image's brightness; the reward prefers brighter images."""
    task = "edit" if len(conversation.images) == 2 else "t2i"
    score = 1 + 3 * brightness(conversation.images[-1])
    return critique_text(task, {"text_faithfulness": score, "physical_quality": score,
                                "image_faithfulness": score, "text_rendering": "N/A"})


@pytest.fixture
def bright_critic() -> ScriptedCritic:
    return ScriptedCritic(bright_script)


def write_prompts(folder: Path, source: Image.Image | None = None) -> Path:
    path = folder / "prompts.jsonl"
    records = []
    for i, prompt in enumerate(PROMPTS):
        record = {"prompt": prompt}
        if source is not None:
            name = f"source{i}.png"
            source.rotate(90 * i).save(folder / name)
            record.update(task="edit", source_image=name)
        records.append(json.dumps(record))
    path.write_text("\n".join(records) + "\n")
    return path


def tiny_values(tmp_path: Path, algorithm: str = "nft", task: str = "t2i", **overrides) -> dict:
    """A tiny run's config. The algorithm keeps the settings these wiring tests were written for (no
    group masking, no KL, old policy = current, one uniform noise level, unscaled loss): the tiny
    images differ so little that the reference's thresholds would mask every group, and the reference
    values have their own formula tests (test_advantages, test_averages, test_losses)."""
    source = Image.new("RGB", (64, 64), (90, 120, 200)) if task == "edit" else None
    values = {
        "task": task,
        "generator": {"model_id": "tiny", "dtype": "fp32"},
        "data": str(write_prompts(tmp_path, source)),
        "sampling": {"group_size": 4, "prompts_per_step": 2, "steps": 4, "width": 64, "height": 64,
                     "max_sequence_length": 32},
        "algorithm": {"name": algorithm, "learning_rate": 0.3, "ema_decay": 0.0, "clip_range": 0.2,
                      "old_decay_max": 0.0, "kl_beta": 0.0, "nft_timesteps": 1, "std_scope": "group",
                      "policy_loss_scale": 1.0, "min_group_std": 0.0, "max_group_mean": None,
                      "nft_noise_levels": "uniform"},
        "lora": {"rank": 4, "alpha": 4},
        "eval": {"every": 4, "num_prompts": 2, "images_per_prompt": 2},
        "output_dir": str(tmp_path / "run"),
        "max_steps": 4,
        "save_every": 2,
        "mixed_precision": "no",
        "gradient_checkpointing": True,
    }
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            values[section][name] = value
        else:
            values[key] = value
    return values


@pytest.fixture
def make_trainer(tmp_path, bright_critic):
    def make(algorithm: str = "nft", task: str = "t2i", critic=None, **overrides) -> RLTrainer:
        config = rl_config(tiny_values(tmp_path, algorithm, task, **overrides))
        return RLTrainer(config, critic=critic or bright_critic)

    return make
