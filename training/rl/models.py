"""Model adapters: the few things the RL sampler and losses need from a diffusers pipeline family.

An adapter encodes prompts (and edit sources) once per group, runs one transformer forward on packed
latents at a noise level sigma, draws initial noise, gives the sigma schedule, and decodes latents to
images. The sampler and the losses only see these calls, so a new family (Qwen-Image, Qwen-Image-Edit)
is one more adapter class (Qwen-Image's is in models_qwen.py), not a change to the algorithm files.

Shapes (FLUX): an H x W image has packed latents (B, S, C) with S = (H / 16) * (W / 16) patches and
C = 4 * latent channels (64 for FLUX.1); Kontext appends the source's packed latents along S for the
transformer only, and the prediction is cut back to the first S tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from rr_core.generators.base import UnsupportedGenerator, prepare_source
from training.rl.models_qwen import (
    DEFAULT_NEGATIVE_PROMPT,
    QWEN_PIPELINES,
    QwenConditioning,
    QwenImageAdapter,
)
from training.rl.packed_latents import PackedLatentAdapter, tensors_to


@dataclass
class Conditioning:
    """Everything the transformer needs besides the noisy latents, for a batch of B images of one group."""

    prompt_embeds: torch.Tensor  # (B, L, D) T5 tokens
    pooled_embeds: torch.Tensor  # (B, Dp) CLIP pooled
    text_ids: torch.Tensor  # (L, 3)
    image_ids: torch.Tensor  # (S [+ S_src], 3) positions of the latent (and source) patches
    source_latents: torch.Tensor | None  # (B, S_src, C) Kontext only
    guidance: torch.Tensor | None  # (B,) distilled guidance, None when the model has no guidance embedding
    height: int
    width: int

    def take(self, index: torch.Tensor | slice) -> Conditioning:
        """The same conditioning for a subset of the batch (index along B)."""
        batched = ("prompt_embeds", "pooled_embeds", "source_latents", "guidance")
        return replace(self, **{name: getattr(self, name)[index] for name in batched
                                if getattr(self, name) is not None})

    def to(self, device: torch.device | str) -> Conditioning:
        return tensors_to(self, device)

    def without_cfg(self) -> Conditioning:
        """FLUX has no true CFG (its guidance is a distilled embedding the loss keeps): the same conditioning."""
        return self


class FluxAdapter(PackedLatentAdapter):
    """FLUX.1 text-to-image (FluxPipeline) and FLUX.1-Kontext edit (FluxKontextPipeline)."""

    def __init__(self, pipeline: Any, max_sequence_length: int = 512) -> None:
        super().__init__(pipeline, max_sequence_length)
        self.is_edit = type(pipeline).__name__ == "FluxKontextPipeline"

    @torch.no_grad()
    def encode(self, prompt: str, source: Image.Image | None, batch: int, height: int, width: int,
               guidance: float) -> Conditioning:
        """Encode one prompt (and edit source) for a group of `batch` images."""
        if self.is_edit and source is None:
            raise UnsupportedGenerator("FLUX.1-Kontext rollouts need a source image for every prompt.")
        if not self.is_edit and source is not None:
            raise UnsupportedGenerator("A text-to-image pipeline takes no source image.")
        pipe = self.pipeline
        device = self.device
        # 1. Text: T5 tokens (batch, L, D), CLIP pooled (batch, Dp), text positions (L, 3).
        prompt_embeds, pooled, text_ids = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=device, num_images_per_prompt=batch,
            max_sequence_length=self.max_sequence_length,
        )
        # 2. Positions of the output patches: (S, 3), row and column in the last two columns.
        lat_h, lat_w = height // (self.vae_scale * 2), width // (self.vae_scale * 2)
        image_ids = pipe._prepare_latent_image_ids(batch, lat_h, lat_w, device, prompt_embeds.dtype)
        source_latents = None
        if source is not None:
            # 3. Kontext: the source through the VAE, packed to (batch, S_src, C); its positions get
            #    first column 1 so the transformer can tell source patches from output patches.
            source = prepare_source(source, max(source.size))
            pixels = pipe.image_processor.preprocess(source, source.height, source.width)
            pixels = pixels.to(device=device, dtype=pipe.vae.dtype)
            latents = pipe.vae.encode(pixels).latent_dist.mode()
            latents = (latents - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
            _, channels, src_h, src_w = latents.shape
            packed = pipe._pack_latents(latents, 1, channels, src_h, src_w)  # (1, S_src, C)
            source_latents = packed.to(prompt_embeds.dtype).expand(batch, -1, -1).contiguous()
            source_ids = pipe._prepare_latent_image_ids(1, src_h // 2, src_w // 2, device, prompt_embeds.dtype)
            source_ids[..., 0] = 1
            image_ids = torch.cat([image_ids, source_ids], dim=0)
        guidance_tensor = None
        if self.transformer.config.guidance_embeds:
            guidance_tensor = torch.full((batch,), float(guidance), device=device, dtype=torch.float32)
        return Conditioning(prompt_embeds, pooled, text_ids, image_ids, source_latents, guidance_tensor,
                            height, width)

    def noise(self, batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """Initial noise (batch, S, C), drawn on the CPU so it does not depend on the device."""
        lat_h, lat_w = 2 * (height // (self.vae_scale * 2)), 2 * (width // (self.vae_scale * 2))
        noise = torch.randn((batch, self.latent_channels, lat_h, lat_w), generator=generator)
        return self.pipeline._pack_latents(noise, batch, self.latent_channels, lat_h, lat_w)

    def sigmas(self, steps: int, height: int, width: int) -> torch.Tensor:
        """The pipeline's noise levels for `steps` steps: (steps + 1,), from about 1 down to 0."""
        scheduler = self.pipeline.scheduler
        seq_len, _ = self.latent_shape(height, width)
        config = scheduler.config
        slope = (config.get("max_shift", 1.15) - config.get("base_shift", 0.5)) / (
            config.get("max_image_seq_len", 4096) - config.get("base_image_seq_len", 256))
        mu = config.get("base_shift", 0.5) + slope * (seq_len - config.get("base_image_seq_len", 256))
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu, device="cpu")
        return scheduler.sigmas.detach().clone().float()

    def forward(self, latents: torch.Tensor, sigma: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Velocity prediction (B, S, C) at noise level sigma (B,) for noisy latents (B, S, C)."""
        hidden = latents if cond.source_latents is None else torch.cat([latents, cond.source_latents], dim=1)
        out = self.transformer(
            hidden_states=hidden.to(cond.prompt_embeds.dtype),
            timestep=sigma.to(cond.prompt_embeds.dtype),
            guidance=cond.guidance,
            pooled_projections=cond.pooled_embeds,
            encoder_hidden_states=cond.prompt_embeds,
            txt_ids=cond.text_ids,
            img_ids=cond.image_ids,
            return_dict=False,
        )[0]
        return out[:, : latents.shape[1]].float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, height: int, width: int) -> list[Image.Image]:
        """Clean packed latents (B, S, C) to PIL images."""
        pipe = self.pipeline
        latents = pipe._unpack_latents(latents, height, width, self.vae_scale)  # (B, c, h, w)
        latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        pixels = pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0]
        return pipe.image_processor.postprocess(pixels, output_type="pil")


ModelConditioning = Conditioning | QwenConditioning


class ModelAdapter(Protocol):
    """What the sampler, the losses and the trainer call on a model family (FluxAdapter, QwenImageAdapter)."""

    transformer: Any

    @property
    def device(self) -> torch.device: ...

    def encode(self, prompt: str, source: Image.Image | None, batch: int, height: int, width: int,
               guidance: float) -> ModelConditioning: ...

    def noise(self, batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor: ...

    def sigmas(self, steps: int, height: int, width: int) -> torch.Tensor: ...

    def forward(self, latents: torch.Tensor, sigma: torch.Tensor, cond: ModelConditioning) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor, height: int, width: int) -> list[Image.Image]: ...


FLUX_PIPELINES = ("FluxPipeline", "FluxKontextPipeline")


def adapter_for(pipeline: Any, max_sequence_length: int = 512,
                negative_prompt: str = DEFAULT_NEGATIVE_PROMPT) -> ModelAdapter:
    """The adapter of a loaded pipeline; `negative_prompt` is Qwen-Image's true-CFG negative (FLUX has none)."""
    name = type(pipeline).__name__
    if name in FLUX_PIPELINES:
        return FluxAdapter(pipeline, max_sequence_length)
    if name in QWEN_PIPELINES:
        return QwenImageAdapter(pipeline, max_sequence_length, negative_prompt)
    raise UnsupportedGenerator(
        f"RL rollouts support {', '.join(sorted(FLUX_PIPELINES + QWEN_PIPELINES))}; {name} has no model adapter "
        "yet (training/rl/models.py: add one with encode / noise / sigmas / forward / decode)."
    )
