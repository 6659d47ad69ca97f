"""What the FLUX and Qwen-Image adapters share: latents packed 2x2 into (B, S, 4C) tokens, and
conditioning dataclasses whose tensors move to a device together."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

import torch

T = TypeVar("T")


class PackedLatentAdapter:
    """A pipeline whose transformer reads 2x2-packed VAE latents; subclasses add encode/forward/decode."""

    def __init__(self, pipeline: Any, max_sequence_length: int = 512) -> None:
        self.pipeline = pipeline
        self.transformer = pipeline.transformer
        self.max_sequence_length = max_sequence_length
        self.latent_channels = self.transformer.config.in_channels // 4
        self.vae_scale = pipeline.vae_scale_factor

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    def latent_shape(self, height: int, width: int) -> tuple[int, int]:
        """(S, C) of the packed latents of an H x W image."""
        return (height // (self.vae_scale * 2)) * (width // (self.vae_scale * 2)), self.latent_channels * 4


def tensors_to(conditioning: T, device: torch.device | str) -> T:
    """A copy of a conditioning dataclass with every tensor field on `device`."""
    values = {f.name: getattr(conditioning, f.name) for f in fields(conditioning)}
    return replace(conditioning, **{k: v.to(device) for k, v in values.items() if isinstance(v, torch.Tensor)})
