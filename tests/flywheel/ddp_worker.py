"""One rank of the two-process CPU (gloo) runs of tests/flywheel/test_distributed.py, started by
`accelerate launch --num_processes 2 --multi_gpu tests/flywheel/ddp_worker.py {distill,rl} OUT` with
ACCELERATE_USE_CPU=true (two CPU processes over gloo; the test module says why not --cpu).

Each rank trains with the project's own trainer and writes `OUT/<mode>-rank<R>.json`: the sha256 of
its trainable weights before and after training, so the test can check that both replicas moved and
ended with the same weights (DDP averaged their gradients every step)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def digest(parameters) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(parameters, key=lambda item: item[0]):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def trainable(model) -> list:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def run_distill(out: Path) -> dict:
    from training.parrot import distill
    from training.parrot.distill import DistillConfig
    from rr_core.critics.tiny import ensure_tiny_critic

    seen: dict = {}
    original_save, original_prepare = distill._save_final, None

    def save_final(accelerator, model, *args, **kwargs):
        seen["after"] = digest(trainable(accelerator.unwrap_model(model)))
        return original_save(accelerator, model, *args, **kwargs)

    import accelerate

    original_prepare = accelerate.Accelerator.prepare

    def prepare(self, *objects):
        for item in objects:
            if hasattr(item, "named_parameters") and "before" not in seen:
                seen["before"] = digest(trainable(item))
        return original_prepare(self, *objects)

    distill._save_final = save_final
    accelerate.Accelerator.prepare = prepare
    config = DistillConfig(base_model=str(ensure_tiny_critic()), dataset=str(out / "sft.jsonl"),
                           output_dir=str(out / "student"), method="lora", lora_r=4, lora_dropout=0.0,
                           learning_rate=5e-2, warmup_ratio=0.0, max_steps=2, batch_size=1, grad_accum=1,
                           max_length=2560, save_every=0, gradient_checkpointing=False)
    summary = distill.train(config)
    return {**seen, "steps": summary["steps"]}


def run_rl(out: Path) -> dict:
    from training.rl.config import load_rl_config
    from training.rl.trainer import RLTrainer

    config = load_rl_config(ROOT / "training/configs/rl_tiny.yaml",
                            [f"output_dir={out / 'rl'}", "max_steps=2", "save_every=0", "eval.every=0"])
    trainer = RLTrainer(config)
    before = digest(trainable(trainer.transformer))
    trainer.train()
    return {"before": before, "after": digest(trainable(trainer.transformer)), "steps": trainer.step}


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    result = {"distill": run_distill, "rl": run_rl}[mode](out)
    import torch.distributed as dist

    backend = dist.get_backend() if dist.is_initialized() else ""
    (out / f"{mode}-rank{rank}.json").write_text(json.dumps({**result, "rank": rank, "world_size": world,
                                                             "backend": backend}))


if __name__ == "__main__":
    main()
