"""Prompt files: source images named by rr_core.images' one reader (path, data URL, base64, bytes)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from training.rl.prompts import PromptDataError, load_prompts


def png_b64(colour) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write(tmp_path, sources) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"edit {i}", "source_image": s}) + "\n"
                            for i, s in enumerate(sources)))
    return str(path)


def test_every_reference_form_gives_the_source_image(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "imgs" / "blue.png")
    items = load_prompts(write(tmp_path, ["imgs/blue.png", png_b64((255, 0, 0)),
                                          "data:image/png;base64," + png_b64((0, 255, 0))]), "edit")
    assert [item.source_image.getpixel((0, 0)) for item in items] == [(0, 0, 255), (255, 0, 0), (0, 255, 0)]


def test_a_missing_source_is_a_specific_error(tmp_path):
    with pytest.raises(PromptDataError, match=r"No source_image file at .*missing.png \(and the text is not base64"):
        load_prompts(write(tmp_path, ["missing.png"]), "edit")


def test_a_broken_data_url_is_a_specific_error(tmp_path):
    with pytest.raises(PromptDataError, match="The source_image is not valid base64 image data"):
        load_prompts(write(tmp_path, ["data:image/png;base64,%%%"]), "edit")
