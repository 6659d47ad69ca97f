"""SFT throughput of the PARROT distillation trainer: samples/s and peak memory, LoRA and QLoRA.

    python -m bench.sft_speed                 # CPU: the tiny random-weight Qwen3-VL
    python -m bench.sft_speed --real-shape    # GPU: Qwen3-VL-8B's shapes with random weights

Each method runs in its own process so peak memory is its own. Data: synthetic pairs with a
real-format pairwise rationale as the target. Figures print as one JSON line per method.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Qwen3-VL-8B-Instruct's published shapes (text: 36 layers, 4096 hidden; vision: 27 blocks, 1152 hidden).
REAL_TEXT = {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
             "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 262144,
             "rope_parameters": {"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                                 "mrope_interleaved": True}}
REAL_VISION = {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "patch_size": 16,
               "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 4096,
               "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24]}


def build_real_shape(folder: Path) -> Path:
    """A random-weight Qwen3-VL at the 8B shapes (bf16), with the tiny processor's token ids."""
    import torch
    from transformers import AutoProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from rr_core.critics.tiny import ensure_tiny_critic

    tiny = ensure_tiny_critic()
    tiny_config = Qwen3VLConfig.from_pretrained(tiny)
    config = Qwen3VLConfig(text_config={**REAL_TEXT, "pad_token_id": tiny_config.text_config.pad_token_id},
                           vision_config=REAL_VISION, image_token_id=tiny_config.image_token_id,
                           video_token_id=tiny_config.video_token_id,
                           vision_start_token_id=tiny_config.vision_start_token_id,
                           vision_end_token_id=tiny_config.vision_end_token_id, tie_word_embeddings=False)
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    del model
    processor = AutoProcessor.from_pretrained(tiny)
    processor.image_processor.size = {"shortest_edge": 256 * 256, "longest_edge": 802816}
    processor.save_pretrained(folder)
    return folder


def run_one(method: str, model: str, steps: int, batch_size: int, work: Path) -> dict:
    import torch

    from tests.critique_texts import PAIRWISE_T2I
    from training.data import DataSource, read_pairs
    from training.parrot.distill import DistillConfig, train
    from training.parrot.sft_data import build_sft_dataset
    from training.parrot.synthetic import write_synthetic_pairs

    path = write_synthetic_pairs(work / "data", n_pairs=max(batch_size * (steps + 1), 4))
    pairs, _ = read_pairs(DataSource("storage", str(path)))
    build_sft_dataset([{"pair_id": p.pair_id, "text": PAIRWISE_T2I} for p in pairs], pairs, work / "sft.jsonl")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    config = DistillConfig(base_model=model, dataset=str(work / "sft.jsonl"), output_dir=str(work / method),
                           method=method, max_steps=steps, batch_size=batch_size, grad_accum=1, save_every=0,
                           merge=False, warmup_ratio=0.0, learning_rate=1e-4)
    start = time.perf_counter()
    summary = train(config)
    return {"method": method, "device": "cuda" if cuda else "cpu", "steps": summary["steps"],
            "batch_size": batch_size, "train_samples_per_s": round(summary["samples_per_s"], 3),
            "wall_s_including_load": round(time.perf_counter() - start, 1),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "trainable_parameters": summary["parameters"]["trainable"],
            "total_parameters": summary["parameters"]["total"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-shape", action="store_true", help="Qwen3-VL-8B shapes, random weights (GPU)")
    parser.add_argument("--methods", default="lora,qlora")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--model", default="", help="(internal) the model folder one method runs on")
    parser.add_argument("--one", default="", help="(internal) run this one method in this process")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    logging.basicConfig(level=logging.WARNING)
    if args.one:
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(run_one(args.one, args.model, args.steps, args.batch_size, Path(work))), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        if args.real_shape:
            import torch

            if not torch.cuda.is_available():
                parser.error("--real-shape needs a CUDA GPU")
            model = str(build_real_shape(Path(folder) / "qwen3-vl-8b-random"))
        else:
            from rr_core.critics.tiny import ensure_tiny_critic

            model = str(ensure_tiny_critic())
        for method in args.methods.split(","):
            subprocess.run([sys.executable, "-m", "bench.sft_speed", "--one", method, "--model", model,
                            "--steps", str(args.steps), "--batch-size", str(args.batch_size)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
