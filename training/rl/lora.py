"""The trained LoRA on the transformer: a trainable "default" adapter, DiffusionNFT's "old" copy, the
parameter average used for evaluation and saving, and saving in the diffusers LoRA format that
rr_core.generators' `load_lora` reads.

Two averages, kept apart as in the reference (they were once one fixed 0.9 here):
* the old policy samples the rollouts and anchors the NFT loss; after optimizer step n it moves to
  old <- d * old + (1 - d) * trained with d = min(0.001 n, 0.5), so early on it follows the trained
  adapter almost exactly and later lags it by at most half;
* `AdapterAverage` is an exponential moving average of the trained adapter, decay
  min((1 + n) / (10 + n), 0.9), swapped in for evaluation and for every saved adapter.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

TRAINED = "default"
OLD = "old"
LORA_INITS = ("gaussian", "kaiming")


def add_adapters(transformer: Any, rank: int, alpha: int, target_modules: list[str], with_old: bool,
                 init_from: str | None = None, pipeline_class: Any = None,
                 init_weights: str = "gaussian") -> list[torch.nn.Parameter]:
    """Freeze the transformer, attach the trainable adapter (and the old copy); return the trainable params.

    Trainable LoRA weights are kept in float32 whatever the base dtype (bf16 master weights drift).
    `init_from` is read with `pipeline_class`'s LoRA loader (FluxPipeline when None), which also converts
    the family's non-diffusers LoRA formats. `init_weights` is peft's init of lora_A: "gaussian" (the
    reference) or "kaiming" (peft's default); lora_B starts at zero either way.
    """
    if init_weights not in LORA_INITS:
        raise ValueError(f"init_weights must be one of {', '.join(LORA_INITS)}, got {init_weights!r}")
    transformer.requires_grad_(False)
    init = True if init_weights == "kaiming" else init_weights  # peft: True is its default (kaiming) init
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(target_modules), init_lora_weights=init)
    transformer.add_adapter(config, adapter_name=TRAINED)
    if init_from:
        if pipeline_class is None:
            from diffusers import FluxPipeline

            pipeline_class = FluxPipeline
        state = pipeline_class.lora_state_dict(init_from)
        state = state[0] if isinstance(state, tuple) else state
        state = {k.removeprefix("transformer."): v for k, v in state.items()}
        set_peft_model_state_dict(transformer, state, adapter_name=TRAINED)
    if with_old:
        with warnings.catch_warnings():  # peft warns about a second adapter, which is the point here
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            transformer.add_adapter(config, adapter_name=OLD)
        copy_adapter(transformer, TRAINED, OLD)
    transformer.set_adapter(TRAINED)
    params = []
    for name, param in transformer.named_parameters():
        if "lora_" in name and f".{TRAINED}." in name:
            param.data = param.data.float()
            param.requires_grad_(True)
            params.append(param)
        elif "lora_" in name:
            param.data = param.data.float()
    return params


def adapter_tensors(transformer: Any, adapter: str) -> dict[str, torch.Tensor]:
    """The adapter's LoRA parameters by module path (adapter name removed)."""
    marker = f".{adapter}."
    return {name.replace(marker, "."): param for name, param in transformer.named_parameters()
            if "lora_" in name and marker in name}


@torch.no_grad()
def copy_adapter(transformer: Any, source: str, target: str) -> None:
    targets = adapter_tensors(transformer, target)
    for name, param in adapter_tensors(transformer, source).items():
        targets[name].copy_(param)


def old_decay(step: int, per_step: float = 0.001, max_decay: float = 0.5) -> float:
    """The old policy's decay after optimizer step `step`: min(per_step * step, max_decay)."""
    return min(per_step * step, max_decay)


@torch.no_grad()
def update_old(transformer: Any, decay: float) -> None:
    """old <- decay * old + (1 - decay) * trained."""
    old = adapter_tensors(transformer, OLD)
    for name, param in adapter_tensors(transformer, TRAINED).items():
        old[name].mul_(decay).add_(param.detach(), alpha=1 - decay)


def average_decay(step: int, decay: float) -> float:
    """The parameter average's decay at optimizer step `step`: min((1 + step) / (10 + step), decay)."""
    return min((1 + step) / (10 + step), decay)


class AdapterAverage:
    """An exponential moving average of the trained adapter, for evaluation and saving."""

    def __init__(self, transformer: Any, decay: float) -> None:
        self.decay = decay
        self.tensors = {k: v.detach().clone() for k, v in adapter_tensors(transformer, TRAINED).items()}

    @torch.no_grad()
    def update(self, transformer: Any, step: int) -> None:
        """average += (1 - d) * (trained - average), d = average_decay(step, decay)."""
        keep = average_decay(step, self.decay)
        for name, param in adapter_tensors(transformer, TRAINED).items():
            self.tensors[name].add_(param.detach() - self.tensors[name], alpha=1 - keep)

    @contextmanager
    def applied(self, transformer: Any) -> Iterator[None]:
        """Run with the average in the trained adapter's place; the trained weights come back after."""
        current = adapter_tensors(transformer, TRAINED)
        saved = {k: v.detach().clone() for k, v in current.items()}
        with torch.no_grad():
            for name, param in current.items():
                param.copy_(self.tensors[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in current.items():
                    param.copy_(saved[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.tensors.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in state.items():
                self.tensors[name].copy_(value)


@contextmanager
def use_adapter(transformer: Any, adapter: str | None) -> Iterator[None]:
    """Run with another adapter active (None: adapters disabled, the reference model); then back to TRAINED."""
    if adapter is None:
        transformer.disable_adapters()
    else:
        transformer.set_adapter(adapter)
    try:
        yield
    finally:
        if adapter is None:
            transformer.enable_adapters()
        transformer.set_adapter(TRAINED)


def save_diffusers_lora(transformer: Any, pipeline_class: Any, folder: str | Path) -> Path:
    """The trained adapter as `pytorch_lora_weights.safetensors` (+ its rank/alpha metadata)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in
             get_peft_model_state_dict(transformer, adapter_name=TRAINED).items()}
    pipeline_class.save_lora_weights(
        folder, transformer_lora_layers=state,
        transformer_lora_adapter_metadata=transformer.peft_config[TRAINED].to_dict(),
    )
    return folder
