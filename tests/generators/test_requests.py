"""Input checks: bad requests and configurations fail early with specific errors, before any model runs."""

from __future__ import annotations

import pytest
from PIL import Image

from rr_core.errors import InvalidImage, InvalidRequest
from rr_core.generators import GenerationRequest, GeneratorConfig, UnsupportedGenerator, prepare_source
from rr_core.limits import MAX_REQUEST_CHARS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "empty"),
        ({"prompt": "   \n"}, "empty"),
        ({"prompt": "x" * (MAX_REQUEST_CHARS + 1)}, "2001 characters"),
        ({"prompt": "a cat", "negative_prompt": "x" * (MAX_REQUEST_CHARS + 1)}, "negative prompt"),
        ({"prompt": "a cat", "width": 100}, "multiple of 16"),
        ({"prompt": "a cat", "height": 0}, "multiple of 16"),
        ({"prompt": "a cat", "width": 4096}, "multiple of 16"),
        ({"prompt": "a cat", "width": 64.0}, "whole number"),
        ({"prompt": "a cat", "steps": 0}, "steps"),
        ({"prompt": "a cat", "steps": True}, "steps"),
        ({"prompt": "a cat", "num_candidates": 0}, "num_candidates"),
        ({"prompt": "a cat", "num_candidates": 17}, "num_candidates"),
        ({"prompt": "a cat", "seed": -1}, "seed"),
        ({"prompt": "a cat", "seed": "7"}, "seed"),
        ({"prompt": "a cat", "guidance": -1.0}, "guidance"),
    ],
)
def test_bad_requests_raise_specific_errors(kwargs, message):
    with pytest.raises(InvalidRequest, match=message):
        GenerationRequest(**kwargs)


def test_prompt_at_the_limit_is_accepted():
    assert len(GenerationRequest("x" * MAX_REQUEST_CHARS).prompt) == MAX_REQUEST_CHARS


def test_source_must_be_an_image():
    with pytest.raises(InvalidImage, match="PIL image"):
        GenerationRequest("make it blue", source_image=b"not an image")


def test_candidate_seeds_follow_the_seed():
    assert GenerationRequest("a cat", seed=41, num_candidates=3).candidate_seeds() == [41, 42, 43]


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((2000, 1000), 1024, (1024, 512)),  # long edge capped, aspect kept
        ((1000, 333), 1024, (992, 320)),  # small enough: only floored to multiples of 16
        ((512, 512), 1024, (512, 512)),  # already on the grid: unchanged
        ((300, 200), 128, (128, 80)),
        ((10, 10), 1024, (16, 16)),  # never below one 16-pixel cell
    ],
)
def test_source_resize_rule(size, max_side, expected):
    assert prepare_source(Image.new("RGB", size), max_side).size == expected


def test_source_is_converted_to_rgb():
    source = prepare_source(Image.new("RGBA", (64, 48), (255, 0, 0, 0)))
    assert source.mode == "RGB"
    assert source.getpixel((0, 0)) == (255, 255, 255)  # transparent reads as white background


def test_config_rejects_unknown_keys_and_values():
    with pytest.raises(UnsupportedGenerator, match="Unknown generator setting"):
        GeneratorConfig.from_dict({"task": "t2i", "model": "x"})
    with pytest.raises(UnsupportedGenerator, match="dtype"):
        GeneratorConfig(dtype="int8")
    with pytest.raises(UnsupportedGenerator, match="unknown task"):
        GeneratorConfig(task="video")
    with pytest.raises(InvalidRequest, match="multiple of 16"):
        GeneratorConfig(width=70)


def test_config_from_dict_parses_task():
    config = GeneratorConfig.from_dict({"task": "edit", "lora_scale": 0.5})
    assert config.task.value == "edit" and config.lora_scale == 0.5
