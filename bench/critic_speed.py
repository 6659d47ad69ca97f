"""Critic decoding speed: the transformers backend against plain `model.generate` on the same inputs.

    python -m bench.critic_speed                      # CPU: the tiny offline critic
    python -m bench.critic_speed --real-shape         # CUDA: random weights at the Qwen3-VL-8B shape

Both sides decode exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens, greedy), so the
difference is the backend's own cost: prompt building, image processing, batching, decoding to
text, parsing and the reward. With --real-shape it also reports the fraction of the memory-bandwidth
roofline: the language model's weight bytes read per decode step over the measured device copy
bandwidth, against the measured time per step. "encode ms" is the chat template and image
processing of the batch, which the backend does and the plain baseline (given encoded inputs) does
not. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from typing import Any

import torch
from PIL import Image

from rr_core.critics.base import CritiqueRequest
from rr_core.critics.tiny import build_model, ensure_tiny_critic
from rr_core.critics.transformers_critic import ChatModel, TransformersCritic, TransformersCriticConfig
from rr_core.rubric import Task

# Qwen3-VL-8B-Instruct's shape (config.json of the checkpoint).
REAL_TEXT_CONFIG = {
    "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 262144,
    "rope_parameters": {"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                        "mrope_interleaved": True},
}
REAL_VISION_CONFIG = {
    "depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "patch_size": 16,
    "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 4096,
    "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24],
}
REAL_MAX_PIXELS = 802_816  # the pixel budget the checkpoints were trained with (896 x 896)


class ForcedLength(TransformersCritic):
    """Decodes exactly max_new_tokens tokens, so the backend and plain generate do equal work."""

    def _extra_generate_kwargs(self, conversations) -> dict[str, Any]:
        return {"min_new_tokens": self.settings.max_new_tokens}


def real_shape_chat_model() -> ChatModel:
    """Random bf16 weights at the 8B shape on the GPU, with the tiny critic's tokenizer and processor."""
    from transformers import AutoProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tiny_path = ensure_tiny_critic()
    processor = AutoProcessor.from_pretrained(tiny_path)
    size = dict(processor.image_processor.size)
    size["longest_edge"] = REAL_MAX_PIXELS
    processor.image_processor.size = size
    tiny = build_model(processor.tokenizer).config
    config = Qwen3VLConfig(
        text_config={**REAL_TEXT_CONFIG, "pad_token_id": tiny.text_config.pad_token_id},
        vision_config=REAL_VISION_CONFIG, image_token_id=tiny.image_token_id, video_token_id=tiny.video_token_id,
        vision_start_token_id=tiny.vision_start_token_id, vision_end_token_id=tiny.vision_end_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16).eval()
    model.generation_config = build_model(processor.tokenizer).generation_config
    return ChatModel(model, processor)


def requests(batch: int, side: int) -> list[CritiqueRequest]:
    subjects = ["a red fox in the snow", "a lighthouse on a cliff at sunset with the word HOPE",
                "a bowl of fruit on a wooden table", "a city street at night with neon signs"]
    return [CritiqueRequest(Task.T2I, subjects[i % len(subjects)],
                            Image.new("RGB", (side, side - 16 * (i % 3)), (30 * i % 255, 90, 160)))
            for i in range(batch)]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Best-of-`repeats` seconds per function, run interleaved so load from other processes hits all alike."""
    for fn in fns.values():
        fn()
    _sync()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def copy_bandwidth() -> float:
    """Device memory bandwidth in bytes/s from a large device-to-device copy (read + write)."""
    source = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    seconds = timed({"copy": lambda: target.copy_(source)}, 10)["copy"]
    return 2 * source.numel() / seconds


def lm_weight_bytes(model) -> int:
    """Bytes read per decode step: the language model's layers and lm_head (embedding is a gather)."""
    layers = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                 if ".language_model." in n and "embed_tokens" not in n)
    return layers + sum(p.numel() * p.element_size() for p in model.lm_head.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-shape", action="store_true", help="8B-shaped random weights (needs CUDA)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-side", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.real_shape and not torch.cuda.is_available():
        parser.error("--real-shape needs a CUDA GPU")

    chat_model = real_shape_chat_model() if args.real_shape else ChatModel.load(
        TransformersCriticConfig(model=str(ensure_tiny_critic())))
    model = chat_model.model
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"critic_speed  {datetime.datetime.now().isoformat(timespec='seconds')}  {platform.node()}  {device}")
    print(f"torch {torch.__version__}  model {'Qwen3-VL-8B shape, random bf16' if args.real_shape else 'tiny Qwen3-VL (fp32)'}  "
          f"new tokens {args.new_tokens}  image {args.image_side}px  best of {args.repeats}, interleaved")
    bandwidth = copy_bandwidth() if args.real_shape else None
    weight_bytes = lm_weight_bytes(model)
    print(f"{'batch':>5} {'backend tok/s':>14} {'plain tok/s':>12} {'overhead':>9} {'decode ms/step':>15} {'roofline':>9} {'encode ms':>10}")
    for batch in args.batch_sizes:
        config = TransformersCriticConfig(model="bench", batch_size=batch, max_new_tokens=args.new_tokens)
        critic = ForcedLength(config, chat_model=chat_model)
        batch_requests = requests(batch, args.image_side)
        conversations = [critic._pointwise_conversation(r) for r in batch_requests]
        inputs = chat_model.encode([c.to_transformers() for c in conversations])

        def plain(new_tokens: int = args.new_tokens):
            with torch.inference_mode():
                return model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False, pad_token_id=chat_model.pad_id)

        seconds = timed({"backend": lambda: critic.critique_many(batch_requests), "plain": plain,
                         "prefill": lambda: plain(1),
                         "encode": lambda: chat_model.encode([c.to_transformers() for c in conversations])},
                        args.repeats)
        backend_s, plain_s, prefill_s = seconds["backend"], seconds["plain"], seconds["prefill"]
        step_s = (plain_s - prefill_s) / (args.new_tokens - 1)
        tokens = batch * args.new_tokens
        roofline = f"{weight_bytes / bandwidth / step_s:8.1%}" if bandwidth else "      n/a"
        print(f"{batch:>5} {tokens / backend_s:>14.1f} {tokens / plain_s:>12.1f} {backend_s / plain_s - 1:>9.1%} "
              f"{step_s * 1e3:>15.2f} {roofline} {seconds['encode'] * 1e3:>10.1f}")
    if bandwidth:
        print(f"LM weights read per step {weight_bytes / 2**30:.2f} GiB; copy bandwidth {bandwidth / 1e9:.0f} GB/s; "
              f"roofline step {weight_bytes / bandwidth * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
