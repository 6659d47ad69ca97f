"""Sequence length: a critique cut to fit max_length is counted and reported, never cut silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from transformers import AutoProcessor

from rr_core.critics.tiny import ensure_tiny_critic
from tests.training_parrot.conftest import write_sft_dataset
from training.parrot.sft_data import IGNORE_INDEX, SFTCollator, load_sft_records, sample_key

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.fixture(scope="module")
def processor():
    return AutoProcessor.from_pretrained(ensure_tiny_critic())


def test_cut_samples_are_counted_once_with_the_tokens_cut(tmp_path, processor):
    records = load_sft_records(write_sft_dataset(tmp_path))[:3]
    roomy = SFTCollator(processor, max_length=100_000)
    full = [roomy.encode(r) for r in records]
    assert roomy.truncated == {}
    prompt_len = int((full[0]["labels"] == IGNORE_INDEX).sum())  # the images' tokens are all in the prompt
    critique_len = len(full[0]["input_ids"]) - prompt_len
    tight = SFTCollator(processor, max_length=prompt_len + 5)
    batch = tight([records[0]])
    assert batch["input_ids"].shape[1] == prompt_len + 5
    tight([records[0]])  # a second epoch over the same sample counts it once
    assert tight.truncated == {sample_key(records[0]): critique_len - 5}
    assert sample_key(records[0]).startswith("pairwise:")


def test_the_8b_config_uses_the_reference_sequence_length():
    raw = yaml.safe_load((CONFIGS / "parrot_8b_80gb.yaml").read_text())
    assert raw["distill"]["max_length"] == 32768
