"""The tiny FLUX pipelines make real images through the real backends: seeds, batches, edits, LoRA."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rr_core.errors import InvalidRequest
from rr_core.generators import GenerationRequest, load_generator
from rr_core.generators.tiny import TINY_SIZE, ensure_tiny_lora, tiny_generator_config


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def source_image(seed: int, size=(96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_text_to_image_makes_rgb_images(t2i_generator):
    (image,) = t2i_generator.generate(GenerationRequest("a red fox in the snow", steps=2))
    assert image.mode == "RGB" and image.size == (TINY_SIZE, TINY_SIZE)
    assert pixels(image).std() > 1.0  # an image, not a constant fill


def test_same_seed_same_pixels_other_seed_other_pixels(t2i_generator):
    first = t2i_generator.generate(GenerationRequest("a red fox", seed=7, steps=2))[0]
    again = t2i_generator.generate(GenerationRequest("a red fox", seed=7, steps=2))[0]
    other = t2i_generator.generate(GenerationRequest("a red fox", seed=8, steps=2))[0]
    assert np.array_equal(pixels(first), pixels(again))
    assert np.abs(pixels(first) - pixels(other)).mean() > 1.0


def test_prompt_changes_the_image(t2i_generator):
    fox = t2i_generator.generate(GenerationRequest("a red fox", seed=7, steps=2))[0]
    boat = t2i_generator.generate(GenerationRequest("a blue boat at sea", seed=7, steps=2))[0]
    assert not np.array_equal(pixels(fox), pixels(boat))


def test_candidates_are_batched_and_each_reproducible_alone(t2i_generator):
    batch = t2i_generator.generate(GenerationRequest("a red fox", seed=20, steps=2, num_candidates=3))
    assert len(batch) == 3
    for i, image in enumerate(batch):
        alone = t2i_generator.generate(GenerationRequest("a red fox", seed=20 + i, steps=2))[0]
        assert np.abs(pixels(image) - pixels(alone)).max() <= 1
    assert not np.array_equal(pixels(batch[0]), pixels(batch[1]))


def test_size_guidance_and_progress(t2i_generator):
    steps_seen = []
    (wide,) = t2i_generator.generate(
        GenerationRequest("a red fox", steps=3, width=96, height=48),
        progress=lambda step, total: steps_seen.append((step, total)),
    )
    assert wide.size == (96, 48)
    assert steps_seen == [(1, 3), (2, 3), (3, 3)]
    low = t2i_generator.generate(GenerationRequest("a red fox", seed=1, steps=2, guidance=1.0))[0]
    high = t2i_generator.generate(GenerationRequest("a red fox", seed=1, steps=2, guidance=8.0))[0]
    assert not np.array_equal(pixels(low), pixels(high))


def test_negative_prompt_is_used_with_true_cfg(tiny_cache):
    generator = load_generator(tiny_generator_config("t2i", tiny_cache, true_cfg_scale=4.0))
    plain = generator.generate(GenerationRequest("a red fox", seed=3, steps=2))[0]
    negative = generator.generate(GenerationRequest("a red fox", negative_prompt="blurry", seed=3, steps=2))[
        0
    ]
    assert not np.array_equal(pixels(plain), pixels(negative))


def test_text_to_image_refuses_a_source(t2i_generator):
    with pytest.raises(InvalidRequest, match="no source image"):
        t2i_generator.generate(GenerationRequest("a red fox", steps=1, source_image=source_image(0)))


def test_edit_output_follows_the_prepared_source(edit_generator):
    # 300x200 with the tiny max_source_side of 128: 128 x 85 -> 128 x 80 on the 16-pixel grid.
    images = edit_generator.generate(
        GenerationRequest("make it blue", steps=2, num_candidates=2, source_image=source_image(0, (300, 200)))
    )
    assert [image.size for image in images] == [(128, 80), (128, 80)]
    (sized,) = edit_generator.generate(
        GenerationRequest("make it blue", steps=2, width=64, height=32, source_image=source_image(0))
    )
    assert sized.size == (64, 32)


def test_edit_depends_on_source_and_seed(edit_generator):
    def edit(source_seed: int, seed: int) -> np.ndarray:
        request = GenerationRequest(
            "make it blue", seed=seed, steps=2, source_image=source_image(source_seed)
        )
        return pixels(edit_generator.generate(request)[0])

    assert np.array_equal(edit(0, 5), edit(0, 5))
    assert not np.array_equal(edit(0, 5), edit(1, 5))
    assert not np.array_equal(edit(0, 5), edit(0, 6))


def test_edit_candidates_reproducible_alone(edit_generator):
    source = source_image(2)
    batch = edit_generator.generate(
        GenerationRequest("add a hat", seed=9, steps=2, num_candidates=2, source_image=source)
    )
    alone = edit_generator.generate(GenerationRequest("add a hat", seed=10, steps=2, source_image=source))[0]
    assert np.abs(pixels(batch[1]) - pixels(alone)).max() <= 1


def test_edit_needs_a_source(edit_generator):
    with pytest.raises(InvalidRequest, match="needs a source image"):
        edit_generator.generate(GenerationRequest("make it blue", steps=1))


def test_lora_changes_output_and_scale_zero_restores_it(tiny_cache):
    request = GenerationRequest("a red fox", seed=4, steps=2)
    base_generator = load_generator(tiny_generator_config("t2i", tiny_cache))
    base = pixels(base_generator.generate(request)[0])
    lora_path = ensure_tiny_lora(tiny_cache)
    generator = load_generator(tiny_generator_config("t2i", tiny_cache, lora_path=str(lora_path)))
    assert generator.lora_scale == 1.0
    with_lora = pixels(generator.generate(request)[0])
    assert np.abs(with_lora - base).mean() > 0.1
    generator.set_lora_scale(0.0)
    assert np.array_equal(pixels(generator.generate(request)[0]), base)
    generator.load_lora(lora_path / "pytorch_lora_weights.safetensors", scale=1.0)  # a file works too
    assert np.array_equal(pixels(generator.generate(request)[0]), with_lora)


def test_lora_loads_into_the_edit_pipeline(tiny_cache):
    request = GenerationRequest("make it blue", seed=4, steps=2, source_image=source_image(0))
    base = pixels(load_generator(tiny_generator_config("edit", tiny_cache)).generate(request)[0])
    lora_path = str(ensure_tiny_lora(tiny_cache))
    generator = load_generator(tiny_generator_config("edit", tiny_cache, lora_path=lora_path, lora_scale=0.5))
    assert not np.array_equal(pixels(generator.generate(request)[0]), base)


def test_missing_lora_is_reported(tiny_cache, tmp_path):
    with pytest.raises(InvalidRequest, match="No LoRA weights"):
        load_generator(tiny_generator_config("t2i", tiny_cache, lora_path=str(tmp_path / "missing")))


def test_unloaded_generator_refuses(tiny_cache):
    generator = load_generator(tiny_generator_config("t2i", tiny_cache))
    generator.unload()
    with pytest.raises(InvalidRequest, match="unloaded"):
        generator.generate(GenerationRequest("a red fox", steps=1))
