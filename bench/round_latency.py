"""Round latency: one Generate–Critique round through the engine against the upstream way.

    python -m bench.round_latency                                  # CPU: the tiny offline models
    python -m bench.round_latency --real-shape --rounds 3          # CUDA: FLUX.1-schnell + Qwen3-VL-8B shapes

"loop" is one round of `rr_core.loop.RefineLoop` with the project's generator backend
(`TextToImageGenerator`) and critic backend (`TransformersCritic`, unconstrained). "upstream" is what
a user of plain diffusers and transformers writes for the same round: `pipeline(prompt,
num_inference_steps, guidance_scale, height, width, generator)`, then `processor.apply_chat_template`
on the same conversation (`build_pointwise(...).to_transformers()`), `model.generate`,
`batch_decode` and `parse_critique`. Same models, prompt, seed, steps and size; both critiques
decode exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens, greedy), so the decode work
is equal.

"Inside the models" is the time in the diffusers pipeline call and in `model.generate` of the
critic (CUDA synchronised at the end of each call); everything else in a round is outside: the chat
template, image processing for the critic, token decoding, streaming, parsing, the reward, events
and bookkeeping. Both ways pay most of it; "loop − upstream" is what the engine costs on top.

`--real-shape` builds random bf16 weights at the real shapes directly on the GPU (no download): the
FLUX.1 transformer (19 double + 38 single blocks, 24 heads x 128), the T5-XXL encoder (24 layers,
d_model 4096; `--t5-layers` shrinks it), CLIP-L and the FLUX VAE, with the tiny pipeline's
tokenizers (prompts are padded to the real sequence lengths, 77 and 512 tokens, so vocabulary
content does not change the work), at 1024x1024; and the Qwen3-VL-8B critic from
bench.critic_speed. Rounds run interleaved (loop, upstream, loop, ...) after one warm-up round of
each; the table shows medians. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from bench.critic_speed import ForcedLength, device_name, real_shape_chat_model
from bench.loop_overhead import Clock, TimedPipeline
from rr_core.critics.chat_model import ChatModel
from rr_core.critics.transformers_critic import TransformersCriticConfig
from rr_core.generators.base import GeneratorConfig
from rr_core.generators.text_to_image import TextToImageGenerator
from rr_core.generators.tiny import TINY_SIZE, ensure_tiny_text_to_image
from rr_core.loop import LoopConfig, RefineLoop, RoundDone
from rr_core.parser import parse_critique
from rr_core.critics.tiny import tiny_critic_settings
from rr_core.prompts import build_pointwise
from rr_core.rubric import Task

# FLUX.1's component configs (config.json of each folder of the checkpoints). CLIP's bos/eos/pad ids
# are the tiny CLIP tokenizer's, so the pooled output reads the end token the tokenizer writes.
FLUX_TRANSFORMER = {
    "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
    "axes_dims_rope": (16, 56, 56),
}
FLUX_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16, "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2, "norm_num_groups": 32, "act_fn": "silu", "sample_size": 1024,
    "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False, "use_post_quant_conv": False,
}
CLIP_L = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "projection_dim": 768, "hidden_act": "quick_gelu",
    "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
}
T5_XXL = {
    "vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
    "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "pad_token_id": 0,
    "eos_token_id": 1, "decoder_start_token_id": 0,
}
FLUX_SCHEDULERS = {
    "schnell": {"shift": 1.0, "use_dynamic_shifting": False, "base_shift": 0.5, "max_shift": 1.15,
                "base_image_seq_len": 256, "max_image_seq_len": 4096},
    "dev": {"shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
            "base_image_seq_len": 256, "max_image_seq_len": 4096},
}
REAL_SIDE = 1024


@dataclass
class Models:
    """What both ways share: one diffusers pipeline and one critic model, with the round's settings."""

    pipeline: Any
    chat_model: ChatModel
    device: str
    side: int
    description: str


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build modules directly in `dtype` (no float32 copy first: 12B parameters would need 48 GB)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def flux_shapes(variant: str, t5_layers: int = 24) -> dict[str, dict]:
    """The component configs of FLUX.1-`variant` (schnell: no guidance embedding; dev: guidance)."""
    if variant not in FLUX_SCHEDULERS:
        raise ValueError(f"variant must be one of {sorted(FLUX_SCHEDULERS)}, got {variant!r}")
    if not 1 <= t5_layers <= T5_XXL["num_layers"]:
        raise ValueError(f"t5_layers must be between 1 and {T5_XXL['num_layers']}, got {t5_layers}")
    return {
        "transformer": {**FLUX_TRANSFORMER, "guidance_embeds": variant == "dev"},
        "vae": dict(FLUX_VAE),
        "clip": dict(CLIP_L),
        "t5": {**T5_XXL, "num_layers": t5_layers},
        "scheduler": dict(FLUX_SCHEDULERS[variant]),
    }


def random_flux_pipeline(shapes: dict[str, dict], device: str, dtype: torch.dtype, seed: int = 0):
    """A FluxPipeline of random weights at `shapes`, built on `device` in `dtype`, with the tiny
    pipeline's tokenizers (the same classes as FLUX.1's; `device="meta"` builds no weights at all)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5Tokenizer,
    )

    if shapes["transformer"]["joint_attention_dim"] != shapes["t5"]["d_model"]:
        raise ValueError("the transformer's joint_attention_dim must equal T5's d_model")
    if shapes["transformer"]["pooled_projection_dim"] != shapes["clip"]["projection_dim"]:
        raise ValueError("the transformer's pooled_projection_dim must equal CLIP's projection_dim")
    tiny = ensure_tiny_text_to_image()
    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):
        transformer = FluxTransformer2DModel(**shapes["transformer"]).eval()
        vae = AutoencoderKL(**shapes["vae"]).eval()
        text_encoder = CLIPTextModel._from_config(CLIPTextConfig(**shapes["clip"]), dtype=dtype).eval()
        text_encoder_2 = T5EncoderModel._from_config(T5Config(**shapes["t5"]), dtype=dtype).eval()
    pipeline = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**shapes["scheduler"]),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(tiny, subfolder="tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=T5Tokenizer.from_pretrained(tiny, subfolder="tokenizer_2"),
        transformer=transformer,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def parameter_gib(module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 2**30


def tiny_models() -> Models:
    """The tiny offline FLUX pipeline and tiny Qwen3-VL critic, on the CPU in float32."""
    from diffusers import AutoPipelineForText2Image

    pipeline = AutoPipelineForText2Image.from_pretrained(ensure_tiny_text_to_image())
    pipeline.set_progress_bar_config(disable=True)
    chat_model = ChatModel.load(TransformersCriticConfig(model=tiny_critic_settings()["model"], fast_decode="off"))
    return Models(pipeline, chat_model, "cpu", TINY_SIZE, "tiny FLUX pipeline + tiny Qwen3-VL critic (fp32)")


def real_shape_models(variant: str, t5_layers: int, device: str = "cuda") -> Models:
    """Random bf16 weights at FLUX.1-`variant`'s and Qwen3-VL-8B's shapes, built on the GPU
    (`device="meta"`: the same models without weights, to check the shapes anywhere)."""
    pipeline = random_flux_pipeline(flux_shapes(variant, t5_layers), device, torch.bfloat16)
    chat_model = real_shape_chat_model(device)
    t5 = "T5-XXL" if t5_layers == T5_XXL["num_layers"] else f"T5-XXL cut to {t5_layers} of 24 layers"
    sizes = ", ".join(f"{name} {parameter_gib(getattr(pipeline, name)):.1f} GiB"
                      for name in ("transformer", "text_encoder_2", "text_encoder", "vae"))
    return Models(pipeline, chat_model, device, REAL_SIDE,
                  f"FLUX.1-{variant} shape ({sizes}; {t5}, CLIP-L, FLUX VAE; tiny tokenizers padded to 77/512) "
                  f"+ Qwen3-VL-8B shape ({parameter_gib(chat_model.model):.1f} GiB), random bf16")


def synced(function: Callable) -> Callable:
    """`function`, returning only once the GPU has finished its work (a no-op wait on the CPU)."""
    def call(*args, **kwargs):
        result = function(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return result
    return call


@dataclass
class RoundTiming:
    generation_s: float
    critique_s: float
    wall_s: float
    inside_s: float
    new_tokens: int

    @property
    def outside_s(self) -> float:
        return self.wall_s - self.inside_s


class Bench:
    """Both ways over the same models; clocks around the pipeline call and the critic's generate."""

    def __init__(self, models: Models, args: argparse.Namespace) -> None:
        self.models, self.args = models, args
        self.pipeline_clock, self.generate_clock = Clock(), Clock()
        self.pipeline = TimedPipeline(models.pipeline, self.pipeline_clock)
        model = models.chat_model.model
        model.generate = self.generate_clock.wrap(synced(model.generate))
        generator = TextToImageGenerator(
            GeneratorConfig(task=Task.T2I, model_id=args.model_name, device=models.device,
                            dtype="bf16" if models.device == "cuda" else "fp32"),
            pipeline=self.pipeline)
        config = TransformersCriticConfig(model="bench", tasks=("t2i",), batch_size=1, max_new_tokens=args.new_tokens,
                                          fast_decode=args.fast_decode, constrained=False)
        self.critic = ForcedLength(config, chat_model=models.chat_model)
        self.loop = RefineLoop(generator, self.critic, Task.T2I)
        self.config = LoopConfig(rounds=1, candidates=1, stop_threshold=None, max_retries=0, seed=args.seed,
                                 steps=args.steps, guidance=args.guidance, width=models.side, height=models.side,
                                 stream_tokens=not args.no_stream)

    def _reset(self) -> None:
        self.pipeline_clock.seconds = self.generate_clock.seconds = 0.0

    def loop_round(self, prompt: str) -> RoundTiming:
        """One round of the engine: generate, critique (streamed when the config says so), pick, propose."""
        self._reset()
        start = time.perf_counter()
        result = None
        for event in self.loop.run(prompt, self.config):
            if isinstance(event, RoundDone):
                result = event.result
        wall = time.perf_counter() - start
        if result is None or not result.candidates or result.candidates[0].critique is None:
            raise RuntimeError(f"the loop's round did not finish with a critique: {result}")
        critique = result.candidates[0].critique
        return RoundTiming(result.generation_s, result.critique_s, wall,
                           self.pipeline_clock.seconds + self.generate_clock.seconds, critique.completion_tokens)

    def upstream_round(self, prompt: str) -> RoundTiming:
        """The same round written with plain diffusers and transformers."""
        self._reset()
        args, side = self.args, self.models.side
        processor, model = self.models.chat_model.processor, self.models.chat_model.model
        start = time.perf_counter()
        image = self.pipeline(prompt, num_inference_steps=args.steps, guidance_scale=args.guidance, height=side,
                              width=side, generator=torch.Generator("cpu").manual_seed(args.seed)).images[0]
        generated = time.perf_counter()
        chat = build_pointwise(Task.T2I, prompt, image).to_transformers()
        inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                               return_tensors="pt").to(model.device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 do_sample=False, pad_token_id=self.models.chat_model.pad_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        text = processor.batch_decode(new, skip_special_tokens=True)[0]
        parse_critique(text, Task.T2I)
        end = time.perf_counter()
        return RoundTiming(generated - start, end - generated, end - start,
                           self.pipeline_clock.seconds + self.generate_clock.seconds, new.shape[1])


def report(loop: list[RoundTiming], upstream: list[RoundTiming]) -> dict:
    """Print the side-by-side table; return the medians (seconds) for callers and tests."""
    rows = [
        ("generation (s)", "generation_s", 1.0, "{:.3f}"),
        ("critique (s)", "critique_s", 1.0, "{:.3f}"),
        ("round wall time (s)", "wall_s", 1.0, "{:.3f}"),
        ("inside the models (s)", "inside_s", 1.0, "{:.3f}"),
        ("outside the models (ms)", "outside_s", 1e3, "{:.1f}"),
    ]
    summary = {"loop": {}, "upstream": {}}
    print("| per round (median) | loop (RefineLoop) | upstream (pipeline + generate) | loop / upstream |")
    print("|---|---|---|---|")
    for label, name, scale, fmt in rows:
        a = statistics.median([getattr(t, name) for t in loop])
        b = statistics.median([getattr(t, name) for t in upstream])
        summary["loop"][name], summary["upstream"][name] = a, b
        ratio = f"{a / b:.3f}" if b > 0 else "n/a"
        print(f"| {label} | {fmt.format(a * scale)} | {fmt.format(b * scale)} | {ratio} |")
    shares = [statistics.median([t.outside_s / t.wall_s for t in way]) for way in (loop, upstream)]
    summary["loop"]["outside_share"], summary["upstream"]["outside_share"] = shares
    print(f"| outside share of the round | {shares[0]:.2%} | {shares[1]:.2%} | |")
    tokens = [sorted({t.new_tokens for t in way}) for way in (loop, upstream)]
    print(f"| critique new tokens | {', '.join(map(str, tokens[0]))} | {', '.join(map(str, tokens[1]))} | |")
    extra = summary["loop"]["wall_s"] - summary["upstream"]["wall_s"]
    summary["extra_s"] = extra
    print(f"engine cost over upstream: {extra * 1e3:+.1f} ms per round ({extra / summary['upstream']['wall_s']:+.2%}); "
          f"engine time outside the models {summary['loop']['outside_s'] * 1e3:.1f} ms "
          f"({summary['loop']['outside_share']:.2%} of the round; targets: < 20 ms on 2 CPU cores, "
          "< 2% with real models)")
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-shape", action="store_true", help="FLUX.1 + Qwen3-VL-8B shapes, random bf16 (CUDA)")
    parser.add_argument("--variant", choices=sorted(FLUX_SCHEDULERS), default="schnell",
                        help="FLUX.1 variant of --real-shape (dev adds the guidance embedding)")
    parser.add_argument("--t5-layers", type=int, default=24, help="T5-XXL layers of --real-shape (24 = real)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds of each way (after one warm-up)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: 4 real, 2 tiny)")
    parser.add_argument("--guidance", type=float, default=None, help="default: 3.5 for dev, 0.0 for schnell/tiny")
    parser.add_argument("--new-tokens", type=int, default=None, help="critique tokens (default: 512 real, 64 tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast-decode", default="off", choices=["off", "static", "compiled", "auto"],
                        help="the loop critic's decode path (off = plain generate, like upstream)")
    parser.add_argument("--no-stream", action="store_true", help="critique without streaming tokens in the loop")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args(argv)
    if args.real_shape and not torch.cuda.is_available():
        parser.error("--real-shape needs a CUDA GPU")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    args.steps = args.steps or (4 if args.real_shape else 2)
    args.new_tokens = args.new_tokens or (512 if args.real_shape else 64)
    if args.guidance is None:
        args.guidance = 3.5 if args.real_shape and args.variant == "dev" else 0.0
    args.model_name = f"random FLUX.1-{args.variant} shape" if args.real_shape else "tiny-flux"
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its header and table, and return the medians."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import diffusers
    import transformers

    built = time.perf_counter()
    models = real_shape_models(args.variant, args.t5_layers) if args.real_shape else tiny_models()
    build_s = time.perf_counter() - built
    bench = Bench(models, args)
    if args.fast_decode != "off":
        bench.critic.warmup(image_side=models.side)
    cuda = torch.cuda.is_available()
    device = device_name()
    print(f"# round latency — {datetime.date.today().isoformat()}, {platform.node()}, {device}, "
          f"{os.cpu_count()} CPUs")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, diffusers {diffusers.__version__}")
    print(f"models: {models.description}; built in {build_s:.0f} s")
    print(f"round: 1 candidate, {models.side}x{models.side}, {args.steps} steps, guidance {args.guidance}, "
          f"{args.new_tokens} forced new tokens (greedy, unconstrained), loop critique "
          f"{'not streamed' if args.no_stream else 'streamed'}, fast_decode={args.fast_decode}; "
          f"{args.rounds} rounds each, interleaved, after one warm-up round each")

    bench.loop_round("a warm-up photo of a lighthouse")
    bench.upstream_round("a warm-up photo of a lighthouse")
    loop, upstream = [], []
    for i in range(args.rounds):
        prompt = f"a photo of {i + 1} red apples on a wooden table"
        loop.append(bench.loop_round(prompt))
        upstream.append(bench.upstream_round(prompt))
    summary = report(loop, upstream)
    if cuda:
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return summary


if __name__ == "__main__":
    main()
