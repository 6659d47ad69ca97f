"""A tiny random-weight Qwen3-VL critic, built offline, so every critic code path runs without downloads.

The model writes meaningless text. It exists so that tests, CI and the CPU benchmark load a
checkpoint through exactly the `from_pretrained` path the real RationalRewards checkpoints use: the
real `Qwen3VLForConditionalGeneration`, the real `Qwen3VLProcessor` (image and video processors)
and a byte-level BPE tokenizer carrying Qwen's special tokens and a Qwen-style chat template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rr_core.model_ids import TINY_CRITIC_NAME
from rr_core.rubric import DIMENSIONS
from rr_core.tiny_cache import build_once, fingerprint

# The special tokens of Qwen2/2.5/3-VL tokenizers, in their upstream order.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen's chat format: every turn is `<|im_start|>role\n...<|im_end|>\n`; images become a vision span
# that the processor expands to one `<|image_pad|>` per merged vision patch.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

TOKENIZER_VOCAB_SIZE = 2048
# Bump when the model or processor recipe changes; the tokenizer's text is fingerprinted on its own.
RECIPE_VERSION = "critic-2"
TINY_IMAGE_MAX_PIXELS = 128 * 128  # at most 16 merged vision tokens per image: fast tests
TINY_IMAGE_MIN_PIXELS = 32 * 32

# Headings the model writes, so the tokenizer has sensible merges for the protocol's own words.
_PROTOCOL_TEXT = """
# User Request Analysis
# Detailed Judgement
## Justification: ## Score: ## Score A: ## Score B: ## Winner: Image A Image B tie N/A
# Summary:
# User Request Refinement:
## Refinement Comments:
## Refined Request:
You are an expert evaluator of generated and edited images. Score every dimension from 1 to 4,
anchor an integer level first, then justify it with concrete evidence and adjust it to a float.
1. Source Image 2. Edited Image. A photo of a red fox in the snow, a cat on a sofa, a city at night
with neon signs that read OPEN, a bowl of fruit, a mountain lake at sunrise, a portrait in oil paint.
"""


def _corpus() -> list[str]:
    """Deterministic English text for the BPE: the rubric and the protocol's headings."""
    lines = [line for line in _PROTOCOL_TEXT.splitlines() if line.strip()]
    for dims in DIMENSIONS.values():
        for dim in dims:
            lines += [dim.heading, dim.scope, *dim.labels, *dim.levels]
    return lines * 4


def build_tokenizer():
    """A byte-level BPE trained on the protocol text, with Qwen's pre-tokenizer and special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    vocab = bpe.get_vocab()
    merges = _merges_of(bpe)
    tokenizer = Qwen2TokenizerFast(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _merges_of(tokenizer) -> list[tuple[str, str]]:
    import json

    state = json.loads(tokenizer.to_str())
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]


def build_processor(tokenizer):
    """The real Qwen3-VL processor classes, with a small pixel budget so tiny-model tests stay fast."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    size = {"shortest_edge": TINY_IMAGE_MIN_PIXELS, "longest_edge": TINY_IMAGE_MAX_PIXELS}
    image_processor = Qwen2VLImageProcessor(
        size=size, patch_size=16, temporal_patch_size=2, merge_size=2,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": TINY_IMAGE_MIN_PIXELS, "longest_edge": TINY_IMAGE_MAX_PIXELS * 4},
        patch_size=16, temporal_patch_size=2, merge_size=2,
    )
    return Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(tokenizer, seed: int = 0):
    """A 2-layer Qwen3-VL with a 2-block vision tower, random weights seeded for reproducibility."""
    import torch
    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN_SPECIAL_TOKENS}
    vocab_size = ((len(tokenizer) + 63) // 64) * 64
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default", "rope_theta": 5_000_000.0,
                "mrope_section": [4, 2, 2], "mrope_interleaved": True,
            },
            "pad_token_id": ids["<|endoftext|>"],
            "initializer_range": 0.5,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    return model


def tokenizer_fingerprint() -> str:
    """A hash of what the tiny tokenizer is trained on (it follows the rubric's wording)."""
    return fingerprint([str(TOKENIZER_VOCAB_SIZE), *_corpus()])


def ensure_tiny_critic(cache_dir: Path | str | None = None) -> Path:
    """The folder of the tiny critic, built once per recipe under `cache_dir` (default rr_core.paths.cache_dir())."""

    def build(folder: Path) -> None:
        tokenizer = build_tokenizer()
        build_processor(tokenizer).save_pretrained(folder)
        build_model(tokenizer).save_pretrained(folder)

    return build_once(TINY_CRITIC_NAME, build, cache_dir, f"{RECIPE_VERSION}:{tokenizer_fingerprint()}")


def tiny_critic_settings(cache_dir: Path | str | None = None) -> dict[str, Any]:
    """TransformersCriticConfig values of the tiny critic (the tiny preset and the factory's `tiny` kind).

    Random weights only write parseable critiques under the grammar; the token budget is the
    grammar's own bound, so a critique always reaches its refined request.
    """
    from rr_core.grammar import max_tokens_for
    from rr_core.rubric import Task

    budget = max(max_tokens_for(task, "pointwise") for task in Task)
    return {"model": str(ensure_tiny_critic(cache_dir)), "tasks": ("t2i", "edit"), "max_new_tokens": budget,
            "constrained": True}
