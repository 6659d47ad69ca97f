"""QLoRA: the tiny Qwen3-VL loaded 4-bit through bitsandbytes (CPU layers) trains a LoRA adapter."""

from __future__ import annotations

import pytest

from rr_core.critics.tiny import ensure_tiny_critic
from tests.critique_texts import PAIRWISE_T2I
from training.data import DataSource, read_pairs
from training.parrot.distill import DistillConfig, load_student, train
from training.parrot.sft_data import build_sft_dataset
from training.parrot.synthetic import write_synthetic_pairs

pytestmark = pytest.mark.slow


def test_qlora_trains_on_cpu(tmp_path):
    import bitsandbytes as bnb

    path = write_synthetic_pairs(tmp_path / "data", n_pairs=4)
    pairs, _ = read_pairs(DataSource("storage", str(path)))
    build_sft_dataset([{"pair_id": p.pair_id, "text": PAIRWISE_T2I} for p in pairs], pairs, tmp_path / "sft.jsonl")
    config = DistillConfig(base_model=str(ensure_tiny_critic()), dataset=str(tmp_path / "sft.jsonl"),
                           output_dir=str(tmp_path / "student"), method="qlora", learning_rate=5e-3,
                           max_steps=3, batch_size=2, grad_accum=1, warmup_ratio=0.0, save_every=0, merge=True)
    model, _ = load_student(config)
    four_bit = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and all("visual" not in n for n in four_bit)
    result = train(config)
    assert result["steps"] == 3 and result["losses"][-1] < result["losses"][0]
    assert (tmp_path / "student" / "merged" / "config.json").is_file()
