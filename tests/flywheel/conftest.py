"""Trained artefacts for the flywheel tests, made in seconds: a LoRA adapter on the tiny critic (as
a PARROT LoRA run saves it, peft format naming its base) and the tiny generator's LoRA."""

from __future__ import annotations

from pathlib import Path

import pytest

from rr_core.critics.tiny import ensure_tiny_critic


def save_critic_adapter(folder: Path, seed: int = 0) -> Path:
    """A random LoRA over the tiny critic, saved the way training.parrot.distill saves a student."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    base = str(ensure_tiny_critic())
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def critic_adapter(tmp_path_factory) -> Path:
    return save_critic_adapter(tmp_path_factory.mktemp("student") / "student")
