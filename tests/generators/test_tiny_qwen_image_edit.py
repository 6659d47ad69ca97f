"""The tiny Qwen-Image-Edit-2509 pipeline through the real QwenImageEditPlusPipeline backend."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rr_core.generators import GenerationRequest, backend_family, load_generator
from rr_core.generators.tiny import ensure_tiny_qwen_image_edit, tiny_generator_config

pytestmark = pytest.mark.slow  # the pipeline VAE-encodes every source at ~1024x1024: ~2 s a call on CPU


@pytest.fixture(scope="module")
def qwen_generator(tiny_cache):
    config = tiny_generator_config("edit", tiny_cache, model_id=str(ensure_tiny_qwen_image_edit(tiny_cache)))
    assert backend_family(config) == "qwen_image_edit"
    return load_generator(config)


def test_qwen_edit_candidates_sizes_and_seeds(qwen_generator):
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    batch = qwen_generator.generate(
        GenerationRequest("make it blue", seed=5, steps=2, num_candidates=2, source_image=source)
    )
    assert [image.size for image in batch] == [(96, 80), (96, 80)]
    assert np.asarray(batch[0]).std() > 1.0
    alone = qwen_generator.generate(GenerationRequest("make it blue", seed=6, steps=2, source_image=source))[
        0
    ]
    assert np.abs(np.asarray(batch[1], dtype=np.int16) - np.asarray(alone, dtype=np.int16)).max() <= 1
    assert not np.array_equal(np.asarray(batch[0]), np.asarray(batch[1]))
