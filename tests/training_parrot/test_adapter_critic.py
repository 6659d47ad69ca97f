"""A LoRA-only student (base model + adapter folder, no merged copy) loads in the critic backend and
decodes exactly as the merged student does; over a 4-bit base the adapter stays as LoRA layers."""

from __future__ import annotations

import pytest
import torch

from rr_core.critics.base import CritiqueRequest
from rr_core.critics.tiny import ensure_tiny_critic
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.model_identity import artefact_id
from rr_core.rubric import Task
from tests.training_parrot.conftest import write_sft_dataset
from training.parrot.distill import DistillConfig, train
from training.parrot.synthetic import draw_circles

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapter")
    # A high learning rate so the adapter moves the weights well away from the base in two steps.
    config = DistillConfig(base_model=str(ensure_tiny_critic()), dataset=write_sft_dataset(root),
                           output_dir=str(root / "student"), method="lora", lora_r=4, lora_dropout=0.0,
                           learning_rate=5e-2, warmup_ratio=0.0, max_steps=2, batch_size=2, grad_accum=1,
                           max_length=2560, save_every=0, gradient_checkpointing=False)
    return train(config)


def critic(**settings) -> TransformersCritic:
    return TransformersCritic(TransformersCriticConfig(tasks=("t2i",), max_new_tokens=24, batch_size=2,
                                                       fast_decode="off", **settings))


def requests() -> list[CritiqueRequest]:
    return [CritiqueRequest(Task.T2I, "three red circles", draw_circles(3, "red", seed=1)),
            CritiqueRequest(Task.T2I, "one blue circle", draw_circles(2, "blue", seed=2))]


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters()}


def test_adapter_loads_and_decodes_as_the_merged_student(student):
    base_path = str(ensure_tiny_critic())
    with_adapter = critic(model=base_path, adapter=student["adapter"])
    merged = critic(model=student["merged"])
    base = critic(model=base_path)
    assert with_adapter.model_id == artefact_id(student["adapter"])

    # The merged-on-load weights are the merged student's, and not the base's.
    adapted, merged_w, base_w = weights(with_adapter.model), weights(merged.model), weights(base.model)
    assert sorted(adapted) == sorted(merged_w)  # plain transformers model: no lora_ modules left
    assert all(torch.allclose(adapted[n], merged_w[n], atol=1e-6) for n in adapted)
    assert any(not torch.allclose(adapted[n], base_w[n], atol=1e-4) for n in adapted)

    texts_adapter = [r.raw_text for r in with_adapter.critique_many(requests())]
    texts_merged = [r.raw_text for r in merged.critique_many(requests())]
    assert texts_adapter == texts_merged and all(texts_adapter)


def test_adapter_over_a_4bit_base_stays_lora(student):
    import bitsandbytes as bnb

    quantized = critic(model=str(ensure_tiny_critic()), adapter=student["adapter"], quantization="4bit")
    modules = dict(quantized.model.named_modules())
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in modules.values())
    assert any("lora_A" in n for n in modules) and type(quantized.model).__name__.startswith("Qwen3VL")
    (result,) = quantized.critique_many(requests()[:1])
    assert result.raw_text
