"""Tiny random-weight FLUX pipelines, built offline, so every generator code path runs without downloads.

The images are noise-like. They exist so that tests, CI and the CPU benchmark load a checkpoint
through exactly the `from_pretrained` path real checkpoints use: a `FluxPipeline` folder (what
`AutoPipelineForText2Image` resolves FLUX.1-schnell to) and a `FluxKontextPipeline` folder, built
from the same seeded components: a 1+1-layer `FluxTransformer2DModel`, a 4-block `AutoencoderKL`
(8x downsampling like the real VAE, so sizes follow the same multiple-of-16 rule), 1-layer CLIP and
T5 text encoders and character-level tokenizers. A 64x64, 2-step generation takes a few hundredths
of a second on a CPU.

`ensure_tiny_lora` saves a random LoRA for that transformer in the diffusers LoRA format, so LoRA
loading (and the RL trainer's adapters) are tested the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rr_core.generators.base import GeneratorConfig
from rr_core.model_ids import TINY_EDIT_NAME, TINY_TEXT_TO_IMAGE_NAME
from rr_core.rubric import Task
from rr_core.tiny_cache import build_once

logger = logging.getLogger(__name__)

TINY_LORA_NAME = "tiny-flux-lora"
TINY_QWEN_IMAGE_EDIT_NAME = "tiny-qwen-image-edit"
TINY_SIZE = 64
TINY_SOURCE_MAX_SIDE = 128
LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
# Bump when the recipe changes: a folder built by another recipe is rebuilt, not reused.
RECIPE_VERSION = "1"

CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512
TEXT_DIM = 32  # CLIP hidden size = pooled projection; T5 d_model = joint attention dim


def build_clip_tokenizer():
    """CLIP's real tokenizer class over a character-level byte vocabulary (no merges needed)."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    for symbol in alphabet + [char + "</w>" for char in alphabet]:
        vocab.setdefault(symbol, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=CLIP_MAX_LENGTH)


def build_t5_tokenizer():
    """T5's real (Unigram) tokenizer class over printable ASCII pieces, with and without the word marker."""
    import string

    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    for char in string.ascii_letters + string.digits + string.punctuation:
        pieces += [("\u2581" + char, -4.0), (char, -5.0)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def build_flux_components(seed: int = 0) -> dict:
    """The seeded tiny components both FLUX pipelines share (same seed, same weights)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tokenizer = build_clip_tokenizer()
    tokenizer_2 = build_t5_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_DIM,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=CLIP_MAX_LENGTH,
            projection_dim=TEXT_DIM,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    # in_channels = 4 latent channels x 2x2 packed patch; head dim 16 = sum of the rope axes.
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=TEXT_DIM,
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=TINY_SIZE,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return {
        "scheduler": scheduler,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
        "transformer": transformer,
    }


def ensure_tiny_text_to_image(cache_dir: Path | str | None = None) -> Path:
    """The folder of the tiny FluxPipeline (loads with AutoPipelineForText2Image), built once."""

    def build(folder: Path) -> None:
        from diffusers import FluxPipeline

        FluxPipeline(**build_flux_components()).save_pretrained(folder)

    return build_once(TINY_TEXT_TO_IMAGE_NAME, build, cache_dir, RECIPE_VERSION)


def ensure_tiny_edit(cache_dir: Path | str | None = None) -> Path:
    """The folder of the tiny FluxKontextPipeline (same weights as the text-to-image one), built once."""

    def build(folder: Path) -> None:
        from diffusers import FluxKontextPipeline

        FluxKontextPipeline(**build_flux_components()).save_pretrained(folder)

    return build_once(TINY_EDIT_NAME, build, cache_dir, RECIPE_VERSION)


def build_qwen_image_edit_components(seed: int = 0) -> dict:
    """Seeded tiny components of QwenImageEditPlusPipeline.

    The text encoder is a 2-layer Qwen2.5-VL with a 2-block vision tower; the tokenizer is the tiny
    critic's Qwen byte-level BPE (same special tokens as Qwen2.5-VL) with a small image pixel budget.
    The VAE downsamples 8x like the real one, so sizes follow the same multiple-of-16 rule. The
    pipeline always encodes the source at about 1024x1024 for the VAE, which costs about two
    seconds on a CPU even at these sizes.
    """
    import torch
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    from rr_core.critics.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in [
            ("image", "<|image_pad|>"),
            ("video", "<|video_pad|>"),
            ("start", "<|vision_start|>"),
            ("end", "<|vision_end|>"),
            ("pad", "<|endoftext|>"),
            ("eos", "<|im_end|>"),
        ]
    }
    pixels = {"min_pixels": 56 * 56, "max_pixels": 112 * 112}  # at most 16 merged vision tokens
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels, patch_size=14, temporal_patch_size=2, merge_size=2),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
    )
    text_dim = 16
    torch.manual_seed(seed)
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "vocab_size": (len(tokenizer) + 63) // 64 * 64,
                "hidden_size": text_dim,
                "intermediate_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]},
                "pad_token_id": ids["pad"],
                "bos_token_id": ids["pad"],
                "eos_token_id": ids["eos"],
            },
            vision_config={
                "depth": 2,
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_heads": 2,
                "out_hidden_size": text_dim,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
                "fullatt_block_indexes": [1],
                "window_size": 56,
            },
            image_token_id=ids["image"],
            video_token_id=ids["video"],
            vision_start_token_id=ids["start"],
            vision_end_token_id=ids["end"],
            bos_token_id=ids["pad"],
            eos_token_id=ids["eos"],
            pad_token_id=ids["pad"],
        )
    )
    # in_channels = 4 latent channels x 2x2 patch; head dim 16 = sum of the rope axes.
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=text_dim,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=0.9,
        base_image_seq_len=256,
        max_image_seq_len=8192,
        shift_terminal=0.02,
        time_shift_type="exponential",
    )
    return {
        "scheduler": scheduler,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "processor": processor,
        "transformer": transformer,
    }


def ensure_tiny_qwen_image_edit(cache_dir: Path | str | None = None) -> Path:
    """The folder of the tiny QwenImageEditPlusPipeline, built once."""

    def build(folder: Path) -> None:
        from diffusers import QwenImageEditPlusPipeline

        QwenImageEditPlusPipeline(**build_qwen_image_edit_components()).save_pretrained(folder)

    from rr_core.critics.tiny import tokenizer_fingerprint

    return build_once(TINY_QWEN_IMAGE_EDIT_NAME, build, cache_dir, f"{RECIPE_VERSION}:{tokenizer_fingerprint()}")


def add_lora(transformer, rank: int = 4, seed: int | None = None, target_modules=LORA_TARGET_MODULES) -> None:
    """Attach a peft LoRA adapter to the transformer's attention projections.

    With `seed` the adapter starts random (both matrices), so it changes the output at once, which
    tests need; without, it starts as peft's identity (B = 0), which training wants.
    """
    import torch
    from peft import LoraConfig

    if seed is not None:
        torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        target_modules=list(target_modules),
        init_lora_weights=seed is None,
    )
    transformer.add_adapter(config)


def save_lora(transformer, folder: Path | str, pipeline_class=None) -> Path:
    """Save the transformer's LoRA adapter in the diffusers format `load_lora_weights` reads."""
    from diffusers import FluxPipeline
    from peft.utils import get_peft_model_state_dict

    pipeline_class = pipeline_class or FluxPipeline
    folder = Path(folder)
    pipeline_class.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return folder


def ensure_tiny_lora(cache_dir: Path | str | None = None, rank: int = 4, seed: int = 1) -> Path:
    """The folder of a random LoRA for the tiny FLUX transformer (both tiny pipelines), built once."""

    def build(folder: Path) -> None:
        transformer = build_flux_components()["transformer"]
        add_lora(transformer, rank=rank, seed=seed)
        save_lora(transformer, folder)

    return build_once(f"{TINY_LORA_NAME}-r{rank}-s{seed}", build, cache_dir, RECIPE_VERSION)


def tiny_generator_config(
    task: Task | str, cache_dir: Path | str | None = None, **overrides
) -> GeneratorConfig:
    """A GeneratorConfig for the tiny pipeline of `task`: CPU, fp32, 64x64 images, small sources."""
    task = Task.parse(task)
    path = ensure_tiny_text_to_image(cache_dir) if task is Task.T2I else ensure_tiny_edit(cache_dir)
    values = {
        "task": task,
        "model_id": str(path),
        "device": "cpu",
        "dtype": "fp32",
        "width": TINY_SIZE,
        "height": TINY_SIZE,
        "max_source_side": TINY_SOURCE_MAX_SIDE,
    }
    values.update(overrides)
    return GeneratorConfig(**values)
