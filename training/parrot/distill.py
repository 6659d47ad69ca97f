"""Phase 3, distillation: SFT of a Qwen3-VL (or Qwen2.5-VL) student on the kept rationales.

One short trainer on `accelerate.Accelerator`, so the same file runs on one device, under
`accelerate launch` with DDP, or with DeepSpeed ZeRO-3 / FSDP for full fine-tuning (configs in
training/configs/). Methods: LoRA, QLoRA (4-bit NF4 base through bitsandbytes) and full fine-tuning.
The vision tower and projector are frozen by default; the loss covers only the assistant critique.
Checkpoints (`accelerator.save_state`: weights, optimizer, scheduler, RNG states) every `save_every`
optimizer steps and at the last step make a run resumable: a rerun continues from the latest one
with the same data order and ends where an uninterrupted run ends (tests/training_parrot/test_resume.py).

The result loads in the critic backends: `<output_dir>/merged` is a full checkpoint
(TransformersCriticConfig(model=<output_dir>/merged)); LoRA runs also keep `<output_dir>/adapter`,
which loads on the base model with TransformersCriticConfig(model=<base_model>, adapter=<output_dir>/adapter).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.parrot.records import JsonlWriter, read_jsonl, write_json
from training.parrot.sft_data import SFTCollator, load_sft_records

logger = logging.getLogger(__name__)

METHODS = ("lora", "qlora", "full")
# LoRA goes on the language model's projections only (the vision tower's layers have other names,
# and the regex also requires "language_model" in the module path).
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
FROZEN_PREFIXES = ("visual",)  # Qwen-VL's vision tower and its merger (the projector)


@dataclass
class DistillConfig:
    """Phase 3 settings (defaults: LoRA on one GPU; see training/configs/ for the 8B and 24 GB presets).

    base_model: Hugging Face id or local folder of the student (Qwen3-VL / Qwen2.5-VL).
    dataset: sharegpt JSONL to train on (the pipeline writes <work_dir>/sft.jsonl and fills this in).
    output_dir: where checkpoints, the adapter, the merged model and the training log go.
    method: "lora", "qlora" (4-bit base) or "full".
    lora_r, lora_alpha, lora_dropout, lora_targets: the adapter (language-model projections only).
    freeze_vision: keep the vision tower and projector frozen (default; upstream did the same).
    learning_rate, weight_decay, warmup_ratio: AdamW with linear warmup then cosine decay.
    epochs: passes over the data; max_steps: stop after this many optimizer steps (0: no limit).
    batch_size: samples per device per micro-batch; grad_accum: micro-batches per optimizer step.
    max_length: tokens per sample (prompt + critique, images included); a longer critique is cut to fit
        and counted: the summary's `truncated_samples`, with a warning. The reference trains with
        32768 (its cutoff_len); an edit sample with three images at 802,816 pixels runs past 4096.
    gradient_checkpointing: recompute activations in the backward pass (saves memory).
    dtype: "auto" (bfloat16 on CUDA, float32 on CPU), "bfloat16", "float16" or "float32".
    save_every: optimizer steps between checkpoints (0: only at the end); keep_checkpoints: how many.
    resume: continue from the latest checkpoint in output_dir if there is one.
    merge: write <output_dir>/merged, a full checkpoint the critic backends load directly.
    max_image_pixels: overrides the processor's pixel budget per image (0 keeps the checkpoint's).
    seed: data order and adapter init. log_every: optimizer steps between log lines.
    """

    base_model: str = "Qwen/Qwen3-VL-8B-Instruct"
    dataset: str = ""
    output_dir: str = ""
    method: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    freeze_vision: bool = True
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    epochs: float = 3.0
    max_steps: int = 0
    batch_size: int = 1
    grad_accum: int = 8
    max_length: int = 4096
    gradient_checkpointing: bool = True
    dtype: str = "auto"
    save_every: int = 200
    keep_checkpoints: int = 2
    resume: bool = True
    merge: bool = True
    max_image_pixels: int = 0
    seed: int = 0
    log_every: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be auto, bfloat16, float16 or float32, got {self.dtype!r}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")


def _dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, name)


def load_student(config: DistillConfig, device_map: Any = None):
    """The student model and processor, frozen where configured, with LoRA/QLoRA adapters attached."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

    dtype = _dtype(config.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.method == "qlora":
        from rr_core.critics.chat_model import QUANT_SKIP_MODULES

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=QUANT_SKIP_MODULES)
        kwargs["device_map"] = device_map or ({"": torch.cuda.current_device()} if torch.cuda.is_available()
                                              else {"": "cpu"})
    model = AutoModelForImageTextToText.from_pretrained(config.base_model, **kwargs)
    processor = AutoProcessor.from_pretrained(config.base_model)
    if config.max_image_pixels:
        processor.image_processor.size = {**dict(processor.image_processor.size),
                                          "longest_edge": config.max_image_pixels}
    model.config.use_cache = False

    if config.method == "full":
        for name, param in model.named_parameters():
            param.requires_grad = not (config.freeze_vision and _is_vision(name))
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return model, processor

    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = "|".join(re.escape(t) for t in config.lora_targets)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=rf".*language_model.*\.({targets})", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    if not config.freeze_vision:
        for name, param in model.named_parameters():
            if _is_vision(name) and param.dtype.is_floating_point:
                param.requires_grad = True
    return model, processor


def _is_vision(name: str) -> bool:
    return any(f".{p}." in f".{name}" or name.startswith(f"{p}.") for p in FROZEN_PREFIXES) or ".visual." in name


def count_parameters(model) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    vision_trainable = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and _is_vision(n))
    return {"trainable": trainable, "total": total, "vision_trainable": vision_trainable}


def _checkpoints(output_dir: Path) -> list[Path]:
    found = [p for p in (output_dir / "checkpoints").glob("step-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _lr_lambda(total_steps: int, warmup_steps: int):
    def scale(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return scale


def train(config: DistillConfig) -> dict[str, Any]:
    """Fine-tune the student; returns a summary (steps, losses, where the model was written)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    # 1. Inputs and the run folder.
    if not config.dataset or not config.output_dir:
        raise ValueError("distill needs a dataset (sharegpt JSONL) and an output_dir; the pipeline fills them in")
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum)
    set_seed(config.seed)
    records = load_sft_records(config.dataset)
    if accelerator.is_main_process:
        write_json(output_dir / "distill_config.json", asdict(config))

    # 2. Model, data, optimizer, schedule.
    model, processor = load_student(config)
    params = count_parameters(model)
    logger.info("student parameters: %s", params)
    processor.tokenizer.padding_side = "right"
    collator = SFTCollator(processor, config.max_length)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(records, batch_size=config.batch_size, shuffle=True, collate_fn=collator,
                        generator=generator)
    steps_per_epoch = max(math.ceil(len(loader) / (config.grad_accum * accelerator.num_processes)), 1)
    total_steps = config.max_steps or math.ceil(steps_per_epoch * config.epochs)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, int(total_steps * config.warmup_ratio)))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    # 3. Resume from the latest checkpoint, if any; the log keeps only the steps that checkpoint holds.
    step = 0
    checkpoints = _checkpoints(output_dir) if config.resume else []
    if checkpoints:
        accelerator.load_state(str(checkpoints[-1]))
        state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
        step = state["step"]
        logger.info("resumed from %s (step %d)", checkpoints[-1], step)
        if state.get("total_steps", total_steps) != total_steps:
            logger.warning("the checkpoint was written by a run of %s steps, this one has %d: the learning-rate "
                           "schedule changes from here on", state.get("total_steps"), total_steps)
    resumed_from = step
    if accelerator.is_main_process:
        _truncate_log(output_dir / "train_log.jsonl", step)

    # 4. The loop: micro-batches accumulate into optimizer steps until total_steps.
    log = JsonlWriter(output_dir / "train_log.jsonl") if accelerator.is_main_process else None
    losses: list[float] = []
    start = time.perf_counter()
    samples = 0
    model.train()
    while step < total_steps:
        epoch = step // steps_per_epoch
        micro_done = (step - epoch * steps_per_epoch) * config.grad_accum
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, micro_done) if micro_done else loader
        window: list[float] = []
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch).loss  # mean over the critique tokens of this micro-batch
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            window.append(accelerator.gather(loss.detach()).mean().item())
            samples += batch["input_ids"].shape[0] * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            step += 1
            losses.append(sum(window) / len(window))
            window = []
            if log is not None and step % config.log_every == 0:
                log.write({"step": step, "loss": losses[-1], "lr": scheduler.get_last_lr()[0],
                           "samples_per_s": samples / (time.perf_counter() - start)})
            if config.save_every and (step % config.save_every == 0 or step == total_steps):
                # the last step is checkpointed too, so rerunning a finished run trains nothing again
                _save_checkpoint(accelerator, output_dir, step, total_steps, config.keep_checkpoints)
            if step >= total_steps:
                break
    if log is not None:
        log.close()
    seconds = time.perf_counter() - start

    # 5. Save: the adapter (LoRA) and a merged full checkpoint the critic backends load.
    accelerator.wait_for_everyone()
    written = _save_final(accelerator, model, processor, config, output_dir)
    truncated = _gather_truncated(accelerator, collator.truncated)
    if truncated:
        logger.warning("%d sample(s) had their critique cut to fit max_length=%d (e.g. %s): raise "
                       "distill.max_length", len(truncated), config.max_length, ", ".join(sorted(truncated)[:3]))
    summary = {"steps": step, "resumed_from_step": resumed_from, "losses": losses, "seconds": seconds,
               "samples_per_s": samples / seconds if seconds else None, "parameters": params,
               "max_length": config.max_length, "truncated_samples": len(truncated),
               "truncated_tokens": sum(truncated.values()), "truncated": dict(sorted(truncated.items())),
               **written}
    if accelerator.is_main_process:
        write_json(output_dir / "distill_summary.json", summary)
    return summary


def _gather_truncated(accelerator, local: dict[str, int]) -> dict[str, int]:
    """Every process's truncated samples (key -> tokens cut), merged."""
    if accelerator.num_processes == 1:
        return dict(local)
    from accelerate.utils import gather_object

    merged: dict[str, int] = {}
    for part in gather_object([local]):
        merged.update(part)
    return merged


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (written after the checkpoint a run resumes from; all of them on a fresh start)."""
    if not path.is_file():
        return
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def _save_checkpoint(accelerator, output_dir: Path, step: int, total_steps: int, keep: int) -> None:
    """accelerate's state (model, optimizer, scheduler, RNGs), then trainer_state.json, which marks it complete."""
    folder = output_dir / "checkpoints" / f"step-{step}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        write_json(folder / "trainer_state.json", {"step": step, "total_steps": total_steps})
        for old in _checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)


def _save_final(accelerator, model, processor, config: DistillConfig, output_dir: Path) -> dict[str, str]:
    written: dict[str, str] = {}
    unwrapped = accelerator.unwrap_model(model)
    if config.method == "full":
        merged = output_dir / "merged"
        state = accelerator.get_state_dict(model)
        if accelerator.is_main_process:
            unwrapped.config.use_cache = True
            unwrapped.save_pretrained(merged, state_dict=state, safe_serialization=True)
            processor.tokenizer.padding_side = "left"
            processor.save_pretrained(merged)
        written["merged"] = str(merged)
        return written
    adapter = output_dir / "adapter"
    if accelerator.is_main_process:
        unwrapped.save_pretrained(adapter)
        processor.save_pretrained(adapter)
    written["adapter"] = str(adapter)
    if config.merge and accelerator.is_main_process:
        written["merged"] = str(merge_adapter(config.base_model, adapter, output_dir / "merged", config.dtype))
    return written


def merge_adapter(base_model: str, adapter_dir: str | Path, out_dir: str | Path, dtype: str = "auto") -> Path:
    """Base weights (unquantized, on CPU) + LoRA adapter -> one full checkpoint with the processor."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out_dir = Path(out_dir)
    base = AutoModelForImageTextToText.from_pretrained(base_model, dtype=_dtype(dtype), device_map="cpu")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(out_dir, safe_serialization=True)
    processor = AutoProcessor.from_pretrained(str(adapter_dir))
    processor.tokenizer.padding_side = "left"
    processor.save_pretrained(out_dir)
    return out_dir
