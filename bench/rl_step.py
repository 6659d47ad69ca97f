"""Seconds per RL step, split into sampling, reward and update, and images per second.

CPU (default): the tiny offline FLUX pipeline and the tiny Qwen3-VL critic (random weights, so its
critiques mostly fail to parse: the reward phase is timed, and the update is timed with random
advantages, whose cost does not depend on their values).
GPU (--real-shape): random weights at the real FLUX.1 transformer and VAE shapes (19 + 38 blocks,
3072 wide, T5 width 4096; 1-layer text encoders of the real output widths) and a random-weight critic
at the Qwen3-VL-8B shape, a group of 8 at 512x512, bf16, LoRA r32, DiffusionNFT or Flow-GRPO.
    python -m bench.rl_step                        # CPU, tiny
    python -m bench.rl_step --real-shape --algorithm grpo
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from training.rl.advantages import Advantages
from training.rl.config import rl_config
from training.rl.trainer import RLTrainer

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def real_shape_pipeline(device: str):
    """A FluxPipeline at the FLUX.1 transformer / VAE shapes with random bf16 weights (no download)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from rr_core.generators.tiny import CLIP_MAX_LENGTH, build_clip_tokenizer, build_t5_tokenizer

    tokenizer, tokenizer_2 = build_clip_tokenizer(), build_t5_tokenizer()
    with torch.device(device):
        transformer = FluxTransformer2DModel(guidance_embeds=True).to(torch.bfloat16)  # FLUX.1 defaults
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                            block_out_channels=(128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False,
                            scaling_factor=0.3611, shift_factor=0.1159).to(torch.bfloat16)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=768, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=12, max_position_embeddings=CLIP_MAX_LENGTH, projection_dim=768,
            bos_token_id=0, eos_token_id=1, pad_token_id=1)).to(torch.bfloat16)
        text_encoder_2 = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_2), d_model=4096, d_kv=64, d_ff=64, num_layers=1, num_heads=8,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)).to(torch.bfloat16)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)


def real_shape_critic(max_new_tokens: int):
    """A TransformersCritic over a random-weight Qwen3-VL at the 8B shape (the tiny critic's tokenizer)."""
    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from rr_core.critics.tiny import QWEN_SPECIAL_TOKENS, build_processor, build_tokenizer
    from rr_core.critics.chat_model import ChatModel
    from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig

    tokenizer = build_tokenizer()
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN_SPECIAL_TOKENS}
    config = Qwen3VLConfig(
        text_config={"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 12288,
                     "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "head_dim": 128, "max_position_embeddings": 32768,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 5_000_000.0,
                                         "mrope_section": [24, 20, 20], "mrope_interleaved": True},
                     "pad_token_id": ids["<|endoftext|>"]},
        vision_config={"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
                       "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "out_hidden_size": 4096, "num_position_embeddings": 2304,
                       "deepstack_visual_indexes": [8, 16, 24]},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    # Random weights never stop on their own: every critique runs to max_new_tokens (the worst case).
    model.generation_config = GenerationConfig(eos_token_id=[], pad_token_id=ids["<|endoftext|>"], do_sample=False,
                                               min_new_tokens=max_new_tokens)
    critic_config = TransformersCriticConfig(model="random-qwen3-vl-8b-shape", tasks=("t2i",), batch_size=8,
                                             max_new_tokens=max_new_tokens)
    return TransformersCritic(critic_config, chat_model=ChatModel(model, build_processor(tokenizer)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-shape", action="store_true", help="FLUX.1 / Qwen3-VL-8B shapes on a CUDA GPU")
    parser.add_argument("--algorithm", choices=["nft", "grpo"], default="nft")
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--size", type=int, default=None, help="default 512 (real shape) or 64 (tiny)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps; default 10 (real) or 4 (tiny)")
    parser.add_argument("--critic-tokens", type=int, default=None,
                        help="default 512 (real); tiny: the grammar's own budget (its critiques parse)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU torch threads (tiny)")
    args = parser.parse_args()
    real = args.real_shape
    if real and not torch.cuda.is_available():
        raise SystemExit("--real-shape needs a CUDA GPU")
    torch.set_num_threads(args.threads)
    size = args.size or (512 if real else 64)
    steps = args.steps or (10 if real else 4)
    tokens = args.critic_tokens or (512 if real else None)

    folder = Path(tempfile.mkdtemp(prefix="rl-bench-"))
    (folder / "prompts.jsonl").write_text(json.dumps({"prompt": "a red fox in the snow"}) + "\n")
    values = {
        "task": "t2i", "generator": {"model_id": "tiny", "dtype": "bf16" if real else "fp32"},
        "critic": {"kind": "tiny", "settings": {"max_new_tokens": tokens} if tokens else {}, "retries": 0},
        "data": str(folder / "prompts.jsonl"),
        "sampling": {"group_size": args.group, "prompts_per_step": 1, "steps": steps, "width": size,
                     "height": size, "max_sequence_length": 512 if real else 32},
        "algorithm": {"name": args.algorithm},
        "lora": {"rank": 32 if real else 4, "alpha": 64 if real else 4},
        "output_dir": str(folder / "run"), "mixed_precision": "bf16" if real else "no",
        "gradient_checkpointing": real,
    }
    config = rl_config(values)
    pipeline = critic = None
    if real:
        pipeline = real_shape_pipeline("cuda")
        critic = real_shape_critic(tokens)
    trainer = RLTrainer(config, critic=critic, pipeline=pipeline)
    sde = args.algorithm == "grpo"
    item = trainer.prompts[0]
    timings: dict[str, list[float]] = {"sampling": [], "reward": [], "update": []}
    for repeat in range(args.repeats + 1):  # the first repeat warms up and is not counted
        sync = torch.cuda.synchronize if real else (lambda: None)
        t0 = time.perf_counter()
        group = trainer.rollout(item, torch.Generator().manual_seed(repeat), args.group, sde)
        sync()
        t1 = time.perf_counter()
        rewards = trainer.score([group])
        t2 = time.perf_counter()
        advantages = Advantages(torch.randn(args.group), torch.ones(args.group, dtype=torch.bool), 0, 1)
        trainer.update([group], advantages.values, advantages.used)
        sync()
        t3 = time.perf_counter()
        if repeat:
            for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2)):
                timings[key].append(value)
    phases = {k: statistics.mean(v) for k, v in timings.items()}
    total = sum(phases.values())
    device = torch.cuda.get_device_name() if real else "cpu"
    print(f"rl_step {args.algorithm} on {device}: group {args.group} at {size}x{size}, {steps} steps, "
          f"critic {tokens or 'grammar-bounded'} new tokens, {'real FLUX.1 / Qwen3-VL-8B shapes' if real else 'tiny models'}")
    for key, value in phases.items():
        print(f"  {key:9s} {value:8.3f} s  ({value / total:5.1%})")
    print(f"  step      {total:8.3f} s   {args.group / total:.2f} images/s   "
          f"critique failure share {rewards.failure_share:.0%}")


if __name__ == "__main__":
    main()
