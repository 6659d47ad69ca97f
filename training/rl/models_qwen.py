"""Qwen-Image model adapter: text-to-image (QwenImagePipeline) and editing (QwenImageEditPlusPipeline).

The calls mirror the two pipelines' `__call__` in diffusers, so a plain rollout at noise level 0 is
the pipeline's own output for the same seed, steps and size (tests/training_rl/test_qwen.py checks it):

* text: the Qwen2.5-VL encoder's last hidden states after the pipeline's system-prompt template; for
  edits the source, resized to about 384 x 384 pixels, goes through the encoder with the prompt;
* edit source: also VAE-encoded at about 1024 x 1024 pixels (whatever the output size), normalized by
  the VAE's latents mean / std, packed and appended to the noisy latents along the sequence for the
  transformer only; `img_shapes` gives the transformer each part's (frames, rows, columns) of patches;
* guidance: Qwen-Image is not guidance-distilled; `guidance` > 1 is true classifier-free guidance with
  the negative prompt (" " by default, as the model card and rr_core's generator use), with the
  pipelines' rescale of the guided velocity to the norm of the conditional one. The guided velocity
  is what the sampler steps with and what Flow-GRPO trains (its log-probabilities are of the guided
  step); DiffusionNFT trains the conditional velocity (`without_cfg`) unless algorithm.nft_loss_cfg,
  as the reference, which samples Qwen-Image-Edit at guidance 1.0 so both are the same policy;
* sigmas: linspace(1, 1/T, T) shifted by the scheduler with mu = calculate_shift(output tokens).

Shapes: an H x W image has packed latents (B, S, C) with S = (H / 16) * (W / 16) and C = 4 * z_dim
(64 for Qwen-Image's 16-channel VAE); an edit source of h x w pixels adds (h / 16) * (w / 16) tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.qwenimage.pipeline_qwenimage import calculate_shift
from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus import (
    CONDITION_IMAGE_SIZE,
    VAE_IMAGE_SIZE,
    calculate_dimensions,
)
from PIL import Image

from rr_core.generators.base import UnsupportedGenerator, prepare_source
from training.rl.packed_latents import PackedLatentAdapter, tensors_to

QWEN_PIPELINES = ("QwenImagePipeline", "QwenImageEditPlusPipeline")
# Every attention projection of both streams (image: to_*, text: add_*_proj / to_add_out).
LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
DEFAULT_NEGATIVE_PROMPT = " "


@dataclass
class QwenConditioning:
    """Everything the Qwen transformer needs besides the noisy latents, for a batch of B images of one group."""

    prompt_embeds: torch.Tensor  # (B, L, D) Qwen2.5-VL hidden states
    prompt_mask: torch.Tensor | None  # (B, L) 1 for real tokens; None when none is padding
    negative_embeds: torch.Tensor | None  # (B, L_neg, D) true CFG only
    negative_mask: torch.Tensor | None  # (B, L_neg)
    source_latents: torch.Tensor | None  # (B, S_src, C) edits only
    img_shapes: list[tuple[int, int, int]]  # (1, rows, cols) of patches: the output, then the source
    true_cfg_scale: float  # > 1: guided velocity; else the conditional one
    height: int
    width: int

    def take(self, index: torch.Tensor | slice) -> QwenConditioning:
        """The same conditioning for a subset of the batch (index along B)."""
        batched = ("prompt_embeds", "prompt_mask", "negative_embeds", "negative_mask", "source_latents")
        return replace(self, **{name: getattr(self, name)[index] for name in batched
                                if getattr(self, name) is not None})

    def to(self, device: torch.device | str) -> QwenConditioning:
        return tensors_to(self, device)

    def without_cfg(self) -> QwenConditioning:
        """The conditional velocity only (one transformer pass): no negative prompt, scale 1."""
        return replace(self, negative_embeds=None, negative_mask=None, true_cfg_scale=1.0)


class QwenImageAdapter(PackedLatentAdapter):
    """Qwen-Image text-to-image (QwenImagePipeline) and Qwen-Image-Edit-2509 (QwenImageEditPlusPipeline)."""

    def __init__(self, pipeline: Any, max_sequence_length: int = 512,
                 negative_prompt: str = DEFAULT_NEGATIVE_PROMPT) -> None:
        name = type(pipeline).__name__
        if name not in QWEN_PIPELINES:
            raise UnsupportedGenerator(f"QwenImageAdapter takes {' or '.join(QWEN_PIPELINES)}, not {name}.")
        if pipeline.transformer.config.guidance_embeds:
            raise UnsupportedGenerator("A guidance-distilled Qwen-Image transformer has no adapter yet.")
        super().__init__(pipeline, max_sequence_length)
        self.negative_prompt = negative_prompt
        self.is_edit = name == "QwenImageEditPlusPipeline"

    def _text(self, prompt: str, condition_image: Image.Image | None, batch: int) -> tuple[torch.Tensor, Any]:
        """(batch, L, D) embeddings and their (batch, L) mask (None when unpadded), as the pipeline encodes."""
        pipe = self.pipeline
        if self.is_edit:
            return pipe.encode_prompt(prompt=prompt, image=[condition_image], device=self.device,
                                      num_images_per_prompt=batch, max_sequence_length=self.max_sequence_length)
        return pipe.encode_prompt(prompt=prompt, device=self.device, num_images_per_prompt=batch,
                                  max_sequence_length=self.max_sequence_length)

    @torch.no_grad()
    def encode(self, prompt: str, source: Image.Image | None, batch: int, height: int, width: int,
               guidance: float) -> QwenConditioning:
        """Encode one prompt (and edit source) for a group of `batch` images; `guidance` is true CFG's scale."""
        if self.is_edit and source is None:
            raise UnsupportedGenerator("Qwen-Image-Edit rollouts need a source image for every prompt.")
        if not self.is_edit and source is not None:
            raise UnsupportedGenerator("A text-to-image pipeline takes no source image.")
        pipe = self.pipeline
        img_shapes = [(1, height // self.vae_scale // 2, width // self.vae_scale // 2)]
        condition_image = source_latents = None
        if source is not None:
            # 1. The source at two sizes of its aspect ratio: ~384^2 for the text encoder, ~1024^2 for the VAE.
            source = prepare_source(source, max(source.size))
            ratio = source.width / source.height
            cond_w, cond_h = calculate_dimensions(CONDITION_IMAGE_SIZE, ratio)
            vae_w, vae_h = calculate_dimensions(VAE_IMAGE_SIZE, ratio)
            condition_image = pipe.image_processor.resize(source, cond_h, cond_w)
            pixels = pipe.image_processor.preprocess(source, vae_h, vae_w).unsqueeze(2)  # (1, 3, 1, h, w)
            img_shapes.append((1, vae_h // self.vae_scale // 2, vae_w // self.vae_scale // 2))
        # 2. Text (with the condition image for edits), and the negative prompt for true CFG.
        prompt_embeds, prompt_mask = self._text(prompt, condition_image, batch)
        negative_embeds = negative_mask = None
        if guidance > 1:
            negative_embeds, negative_mask = self._text(self.negative_prompt, condition_image, batch)
        if source is not None:
            # 3. Source latents: VAE mode, (z - mean) / std, packed to (1, S_src, C), repeated for the group.
            latents = pipe._encode_vae_image(pixels.to(device=self.device, dtype=prompt_embeds.dtype), None)
            _, channels, _, lat_h, lat_w = latents.shape
            packed = pipe._pack_latents(latents, 1, channels, lat_h, lat_w)
            source_latents = packed.expand(batch, -1, -1).contiguous()
        return QwenConditioning(prompt_embeds, prompt_mask, negative_embeds, negative_mask, source_latents,
                                img_shapes, float(guidance), height, width)

    def noise(self, batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """Initial noise (batch, S, C), drawn on the CPU in the pipeline's (batch, 1, c, h, w) layout."""
        lat_h, lat_w = 2 * (height // (self.vae_scale * 2)), 2 * (width // (self.vae_scale * 2))
        noise = torch.randn((batch, 1, self.latent_channels, lat_h, lat_w), generator=generator)
        return self.pipeline._pack_latents(noise, batch, self.latent_channels, lat_h, lat_w)

    def sigmas(self, steps: int, height: int, width: int) -> torch.Tensor:
        """The pipeline's noise levels for `steps` steps: (steps + 1,), from about 1 down to 0."""
        scheduler = self.pipeline.scheduler
        seq_len, _ = self.latent_shape(height, width)
        config = scheduler.config
        mu = calculate_shift(seq_len, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                             config.get("base_shift", 0.5), config.get("max_shift", 1.15))
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu, device="cpu")
        return scheduler.sigmas.detach().clone().float()

    def _velocity(self, hidden: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor, mask: Any,
                  cond: QwenConditioning, length: int) -> torch.Tensor:
        out = self.transformer(
            hidden_states=hidden,
            timestep=sigma.to(hidden.dtype),
            encoder_hidden_states=embeds,
            encoder_hidden_states_mask=mask,
            img_shapes=[cond.img_shapes] * hidden.shape[0],
            return_dict=False,
        )[0]
        return out[:, :length].float()

    def forward(self, latents: torch.Tensor, sigma: torch.Tensor, cond: QwenConditioning) -> torch.Tensor:
        """Velocity prediction (B, S, C) at noise level sigma (B,) for noisy latents (B, S, C)."""
        length = latents.shape[1]
        hidden = latents if cond.source_latents is None else torch.cat([latents, cond.source_latents], dim=1)
        hidden = hidden.to(cond.prompt_embeds.dtype)  # (B, S [+ S_src], C)
        velocity = self._velocity(hidden, sigma, cond.prompt_embeds, cond.prompt_mask, cond, length)
        if cond.negative_embeds is None or cond.true_cfg_scale <= 1:
            return velocity
        negative = self._velocity(hidden, sigma, cond.negative_embeds, cond.negative_mask, cond, length)
        guided = negative + cond.true_cfg_scale * (velocity - negative)
        # The pipelines' rescale: each token's guided velocity keeps the conditional one's norm.
        return guided * (torch.norm(velocity, dim=-1, keepdim=True) / torch.norm(guided, dim=-1, keepdim=True))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, height: int, width: int) -> list[Image.Image]:
        """Clean packed latents (B, S, C) to PIL images."""
        pipe = self.pipeline
        vae = pipe.vae
        latents = pipe._unpack_latents(latents, height, width, self.vae_scale).to(vae.dtype)  # (B, c, 1, h, w)
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents.device, latents.dtype)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(shape).to(latents.device, latents.dtype)
        pixels = vae.decode(latents / inv_std + mean, return_dict=False)[0][:, :, 0]
        return pipe.image_processor.postprocess(pixels, output_type="pil")
