"""Critic decoding speed: the transformers backend against plain `model.generate` on the same inputs.

    python -m bench.critic_speed                      # CPU: the tiny offline critic
    python -m bench.critic_speed --real-shape         # CUDA: random weights at the Qwen3-VL-8B shape

Both sides decode exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens, greedy). "plain" is
what a user of plain transformers does for the same critique: `processor.apply_chat_template` with
the images, `model.generate`, `batch_decode`; the backend's overhead over it is its own cost
(prompt building, batching, cutting at the end token, parsing, the reward). "encode ms" is the chat
template and image processing of the batch, which both sides pay.

The issue-8 table compares, in one run, plain generate, generate with cache_implementation="static"
and the backend's fast decode path (rr_core.critics.fast_decode: kept bucketed static cache, compiled
CUDA-graph decode step; on CPU it falls back to plain and the kept static cache is shown instead),
each with its fraction of the memory-bandwidth roofline: the language model's weight bytes read per
decode step over the measured copy bandwidth (device-to-device on CUDA, memcpy on CPU), against the
measured time per step. "ttft ms" is the time to the first streamed text delta of one critique;
"warm-up s" is the fast path's compile and capture time. It also checks that the fast path's greedy
tokens equal plain generate's, and prints the token-identical prefix two different requests share.
The prefix table times the first token of a round's K edit candidates (one instruction and source
image) with prefix KV reuse off and on (rr_core.critics.prefix_reuse), and checks the tokens match.
Prints figures; not a test.
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
from rr_core.critics.chat_model import ChatModel
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
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


def real_shape_chat_model(device: str = "cuda") -> ChatModel:
    """Random bf16 weights at the 8B shape on the GPU, with the tiny critic's tokenizer and processor.

    `device="meta"` builds the same model without weights (tests check the shape on a CPU machine).
    """
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
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16).eval()
    model.generation_config = build_model(processor.tokenizer).generation_config
    return ChatModel(model, processor)


def requests(batch: int, side: int) -> list[CritiqueRequest]:
    subjects = ["a red fox in the snow", "a lighthouse on a cliff at sunset with the word HOPE",
                "a bowl of fruit on a wooden table", "a city street at night with neon signs"]
    return [CritiqueRequest(Task.T2I, subjects[i % len(subjects)],
                            Image.new("RGB", (side, side - 16 * (i % 3)), (30 * i % 255, 90, 160)))
            for i in range(batch)]


def sync() -> None:
    """Wait for the GPU (a no-op on CPU), so a timer sees the work, not its launch."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device_name() -> str:
    """The machine a figure was measured on: the GPU's name, or the CPU and torch's thread count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def timed(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Best-of-`repeats` seconds per function, run interleaved so load from other processes hits all alike."""
    for fn in fns.values():
        fn()
    sync()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def copy_bandwidth() -> float:
    """Memory bandwidth in bytes/s from a large copy (read + write): device-to-device, or memcpy on CPU."""
    cuda = torch.cuda.is_available()
    source = torch.ones(2**30 if cuda else 2**28, dtype=torch.uint8, device="cuda" if cuda else "cpu")
    target = torch.empty_like(source)
    seconds = timed({"copy": lambda: target.copy_(source)}, 10)["copy"]
    return 2 * source.numel() / seconds


def lm_weight_bytes(model) -> int:
    """Bytes read per decode step: the language model's layers and lm_head (embedding is a gather)."""
    layers = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                 if ".language_model." in n and "embed_tokens" not in n)
    return layers + sum(p.numel() * p.element_size() for p in model.lm_head.parameters())


def plain_user(chat_model: ChatModel, chats: list, new_tokens: int, **generate_kwargs) -> list[str]:
    """What a plain-transformers user writes for the same critique: template + images, generate, decode."""
    processor = chat_model.processor
    texts = [processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in chats]
    images = [part["image"] for chat in chats for message in chat if not isinstance(message["content"], str)
              for part in message["content"] if part.get("type") == "image"]
    inputs = processor(text=texts, images=images, padding=True, return_tensors="pt").to(chat_model.model.device)
    with torch.inference_mode():
        out = chat_model.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                        do_sample=False, pad_token_id=chat_model.pad_id, **generate_kwargs)
    return processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def shared_prefix_tokens(chat_model: ChatModel, critic: TransformersCritic) -> tuple[int, int]:
    """Tokens two different t2i requests share from the start (causal attention: only a prefix is reusable)."""
    pair = [critic._pointwise_conversation(r) for r in requests(2, 256)]
    ids = [chat_model.encode([c.to_transformers()])["input_ids"][0].tolist() for c in pair]
    shared = next(i for i, (a, b) in enumerate(zip(*ids)) if a != b)
    return shared, len(ids[0])


def ttft(critic: TransformersCritic, request: CritiqueRequest) -> float:
    """Seconds to the first text delta of one streamed critique (the stream is then drained)."""
    start = time.perf_counter()
    stream = iter(critic.stream(request))
    next(stream)
    seconds = time.perf_counter() - start
    for _ in stream:
        pass
    return seconds


def overhead_table(chat_model: ChatModel, args, bandwidth: float | None, weight_bytes: int) -> None:
    """Issue 2: the backend against plain transformers doing the same critique (both pay encoding)."""
    model = chat_model.model
    print(f"{'batch':>5} {'backend tok/s':>14} {'plain tok/s':>12} {'overhead':>9} {'decode ms/step':>15} {'roofline':>9} {'encode ms':>10}")
    for batch in args.batch_sizes:
        config = TransformersCriticConfig(model="bench", batch_size=batch, max_new_tokens=args.new_tokens,
                                          fast_decode="off")
        critic = ForcedLength(config, chat_model=chat_model)
        batch_requests = requests(batch, args.image_side)
        chats = [critic._pointwise_conversation(r).to_transformers() for r in batch_requests]
        inputs = chat_model.encode(chats)

        def prefill():
            with torch.inference_mode():
                return model.generate(**inputs, max_new_tokens=1, do_sample=False, pad_token_id=chat_model.pad_id)

        seconds = timed({"backend": lambda: critic.critique_many(batch_requests),
                         "plain": lambda: plain_user(chat_model, chats, args.new_tokens),
                         "prefill": prefill, "encode": lambda: chat_model.encode(chats)}, args.repeats)
        backend_s, plain_s = seconds["backend"], seconds["plain"]
        step_s = (plain_s - seconds["encode"] - seconds["prefill"]) / (args.new_tokens - 1)
        tokens = batch * args.new_tokens
        roofline = f"{weight_bytes / bandwidth / step_s:8.1%}" if bandwidth else "      n/a"
        print(f"{batch:>5} {tokens / backend_s:>14.1f} {tokens / plain_s:>12.1f} {backend_s / plain_s - 1:>9.1%} "
              f"{step_s * 1e3:>15.2f} {roofline} {seconds['encode'] * 1e3:>10.1f}")


def fast_decode_table(chat_model: ChatModel, args, bandwidth: float, weight_bytes: int) -> None:
    """Issue 8: plain, static-cache generate and the fast path side by side, with roofline fractions."""
    fast_mode = "auto" if torch.cuda.is_available() else "static"
    fast_config = TransformersCriticConfig(model="bench", batch_size=max(args.fast_batch_sizes),
                                           max_new_tokens=args.new_tokens, fast_decode=fast_mode)
    fast = ForcedLength(fast_config, chat_model=chat_model)
    chat_model.fast.batch_buckets = tuple(sorted(set(args.fast_batch_sizes)))  # compile only what is measured
    start = time.perf_counter()
    status = fast.warmup(image_side=args.image_side)
    warmup_s = time.perf_counter() - start
    print(f"fast path: fast_decode={fast_mode!r} -> {chat_model.fast.mode} ({status}); warm-up {warmup_s:.1f} s "
          f"for batch buckets {list(chat_model.fast.batch_buckets)}")
    roof = weight_bytes / bandwidth
    print(f"{'batch':>5} {'plain tok/s':>12} {'static tok/s':>13} {'fast tok/s':>11} "
          f"{'plain roof':>11} {'static roof':>12} {'fast roof':>10} {'same tokens':>12}")
    for batch in args.fast_batch_sizes:
        batch_requests = requests(batch, args.image_side)
        chats = [fast._pointwise_conversation(r).to_transformers() for r in batch_requests]
        encode_s = timed({"encode": lambda: chat_model.encode(chats)}, 1)["encode"]
        inputs = chat_model.encode(chats)

        def prefill():
            with torch.inference_mode():
                return chat_model.model.generate(**inputs, max_new_tokens=1, do_sample=False,
                                                 pad_token_id=chat_model.pad_id)

        runs = {"plain": lambda: plain_user(chat_model, chats, args.new_tokens),
                "fast": lambda: fast.critique_many(batch_requests), "prefill": prefill}
        if args.static_batch_sizes is None or batch in args.static_batch_sizes:  # compiles once per batch size
            runs["static"] = lambda: plain_user(chat_model, chats, args.new_tokens, cache_implementation="static")
        seconds = timed(runs, args.repeats)
        tokens = batch * args.new_tokens
        fixed_s = encode_s + seconds["prefill"]
        rate = {k: f"{tokens / seconds[k]:.1f}" if k in seconds else "-" for k in ("plain", "static", "fast")}
        roofs = {k: f"{roof / ((seconds[k] - fixed_s) / (args.new_tokens - 1)):.1%}" if k in seconds else "-"
                 for k in ("plain", "static", "fast")}
        same = plain_user(chat_model, chats, args.new_tokens) == [c.raw_text for c in fast.critique_many(batch_requests)]
        print(f"{batch:>5} {rate['plain']:>12} {rate['static']:>13} {rate['fast']:>11} {roofs['plain']:>11} "
              f"{roofs['static']:>12} {roofs['fast']:>10} {'yes' if same else 'NO':>12}")
    request = requests(1, args.image_side)[0]
    plain_critic = ForcedLength(TransformersCriticConfig(model="bench", max_new_tokens=args.new_tokens,
                                                         fast_decode="off"), chat_model=chat_model)
    ttft(plain_critic, request)
    plain_ttft = ttft(plain_critic, request)
    fast = ForcedLength(fast_config, chat_model=chat_model)
    ttft(fast, request)
    print(f"time to first token (batch 1): plain {plain_ttft * 1e3:.0f} ms, fast {ttft(fast, request) * 1e3:.0f} ms")
    shared, total = shared_prefix_tokens(chat_model, fast)
    print(f"shared prefix of two different requests: {shared} of {total} prompt tokens ({shared / total:.1%})")


def edit_candidates(count: int, side: int) -> list[CritiqueRequest]:
    """A round's K edit candidates: one instruction and source image, different edited images."""
    source = Image.new("RGB", (side, side), (120, 140, 90))
    return [CritiqueRequest(Task.EDIT, "replace the sky with a purple sunset and add a small red boat",
                            Image.new("RGB", (side, side), (40 * i % 255, 90, 160)), source)
            for i in range(count)]


def prefix_reuse_table(chat_model: ChatModel, args) -> None:
    """Prefix KV reuse: time to the first token of a K-candidate edit batch, prefix reuse off and on.

    The kept static cache without compile: reuse changes the prefill, which is never compiled.
    """
    mode = "static"
    critics = {reuse: ForcedLength(TransformersCriticConfig(model="bench", tasks=("edit",), batch_size=64,
                                                            max_new_tokens=1, fast_decode=mode,
                                                            prefix_reuse=reuse), chat_model=chat_model)
               for reuse in (False, True)}
    print(f"{'K':>3} {'prompt tok':>10} {'shared':>7} {'first token, off':>17} {'on':>8} {'ratio':>6} {'same tokens':>12}")
    for count in args.prefix_batch_sizes:
        batch = edit_candidates(count, args.image_side)
        seconds = timed({reuse: lambda c=c: c.critique_many(batch) for reuse, c in critics.items()}, args.repeats)
        shared = chat_model.fast.shared_prefix_tokens
        prompt = chat_model.encode([critics[True]._pointwise_conversation(batch[0]).to_transformers()])
        longer = {reuse: ForcedLength(TransformersCriticConfig(model="bench", tasks=("edit",), batch_size=64,
                                                               max_new_tokens=args.new_tokens, fast_decode=mode,
                                                               prefix_reuse=reuse), chat_model=chat_model)
                  for reuse in (False, True)}
        same = [c.raw_text for c in longer[False].critique_many(batch)] == \
            [c.raw_text for c in longer[True].critique_many(batch)]
        print(f"{count:>3} {prompt['input_ids'].shape[1]:>10} {shared:>7} {seconds[False] * 1e3:>14.0f} ms "
              f"{seconds[True] * 1e3:>5.0f} ms {seconds[False] / seconds[True]:>5.2f}x {'yes' if same else 'NO':>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-shape", action="store_true", help="8B-shaped random weights (needs CUDA)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--fast-batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--static-batch-sizes", type=int, nargs="*", default=None,
                        help="batch sizes that also run generate's own static cache (each compiles once; "
                             "default: all of --fast-batch-sizes)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-side", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--skip-overhead", action="store_true", help="only the issue-8 table")
    parser.add_argument("--skip-fast", action="store_true", help="only the issue-2 overhead table")
    parser.add_argument("--prefix-batch-sizes", type=int, nargs="*", default=[4, 8],
                        help="K of the prefix-reuse table (edit candidates of one request); none skips it")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.real_shape and not torch.cuda.is_available():
        parser.error("--real-shape needs a CUDA GPU")

    chat_model = real_shape_chat_model() if args.real_shape else ChatModel.load(
        TransformersCriticConfig(model=str(ensure_tiny_critic()), fast_decode="off"))
    device = device_name()
    print(f"critic_speed  {datetime.datetime.now().isoformat(timespec='seconds')}  {platform.node()}  {device}")
    print(f"torch {torch.__version__}  model {'Qwen3-VL-8B shape, random bf16' if args.real_shape else 'tiny Qwen3-VL (fp32)'}  "
          f"new tokens {args.new_tokens}  image {args.image_side}px  best of {args.repeats}, interleaved")
    bandwidth = copy_bandwidth()
    weight_bytes = lm_weight_bytes(chat_model.model)
    print(f"LM weights read per step {weight_bytes / 2**20:.1f} MiB; copy bandwidth {bandwidth / 1e9:.1f} GB/s; "
          f"roofline step {weight_bytes / bandwidth * 1e3:.3f} ms"
          + ("" if args.real_shape else " (tiny model on CPU: compare ratios only)"))
    if not args.skip_overhead:
        overhead_table(chat_model, args, bandwidth if args.real_shape else None, weight_bytes)
    if not args.skip_fast:
        fast_decode_table(chat_model, args, bandwidth, weight_bytes)
    if args.prefix_batch_sizes:
        prefix_reuse_table(chat_model, args)


if __name__ == "__main__":
    main()
