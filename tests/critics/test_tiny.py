"""The offline tiny critic: a coherent checkpoint that loads through the real from_pretrained path."""

from __future__ import annotations

import json
import threading

import pytest
from transformers import AutoProcessor

from rr_core.critics.tiny import QWEN_SPECIAL_TOKENS, ensure_tiny_critic
from rr_core.model_ids import TINY_CRITIC_NAME


def test_checkpoint_is_coherent(tiny_critic_path):
    processor = AutoProcessor.from_pretrained(tiny_critic_path)
    config = json.loads((tiny_critic_path / "config.json").read_text())
    generation = json.loads((tiny_critic_path / "generation_config.json").read_text())
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    assert len(set(ids.values())) == len(QWEN_SPECIAL_TOKENS)
    assert config["image_token_id"] == ids["<|image_pad|>"]
    assert config["vision_start_token_id"] == ids["<|vision_start|>"]
    assert config["text_config"]["vocab_size"] >= len(tokenizer)
    assert ids["<|im_end|>"] in generation["eos_token_id"] and generation["pad_token_id"] is not None
    text = "## Score: 3.5 — naïve café"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    chat = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]}]
    rendered = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert rendered == "<|im_start|>user\nhi<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.slow
def test_concurrent_builders_end_with_one_checkpoint(tmp_path):
    paths: list = []
    threads = [threading.Thread(target=lambda: paths.append(ensure_tiny_critic(tmp_path))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert paths == [tmp_path / TINY_CRITIC_NAME] * 2
    assert [p.name for p in tmp_path.iterdir()] == [TINY_CRITIC_NAME]
    assert (tmp_path / TINY_CRITIC_NAME / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_checkpoint_built_from_other_rubric_text_is_rebuilt(tmp_path, monkeypatch):
    """The tokenizer is trained on the rubric's words; when they change, a cached checkpoint is stale.

    Reusing it silently gives tests a tokenizer the current code never built (how a CI-only failure
    once looked like a local pass)."""
    from rr_core.critics import tiny

    first = ensure_tiny_critic(tmp_path)
    before = (first / "tokenizer.json").read_text()
    assert ensure_tiny_critic(tmp_path) == first  # unchanged inputs: reused
    assert (first / "tokenizer.json").read_text() == before
    monkeypatch.setattr(tiny, "_PROTOCOL_TEXT", tiny._PROTOCOL_TEXT + "\nzyxwv zyxwv zyxwv zyxwv\n" * 8)
    again = ensure_tiny_critic(tmp_path)
    assert again == first
    assert (again / "tokenizer.json").read_text() != before
    assert "zyxwv" in AutoProcessor.from_pretrained(again).tokenizer.get_vocab()
    assert sorted(p.name for p in tmp_path.iterdir()) == [TINY_CRITIC_NAME]


@pytest.mark.slow
def test_a_checkpoint_without_a_recipe_stamp_is_rebuilt(tmp_path):
    stale = tmp_path / TINY_CRITIC_NAME
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    path = ensure_tiny_critic(tmp_path)
    assert json.loads((path / "config.json").read_text())["model_type"] == "qwen3_vl"
