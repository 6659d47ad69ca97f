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
