import io

import numpy as np
import pytest
from PIL import Image

from rr_core import images
from rr_core.errors import InvalidImage
from rr_core.images import fit_to_grid, load_image


def encode(image, fmt="PNG", **kw):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def test_png_jpeg_path_and_array(tmp_path):
    rgb = Image.new("RGB", (40, 30), (10, 20, 30))
    assert load_image(encode(rgb)).getpixel((0, 0)) == (10, 20, 30)
    assert load_image(encode(rgb, "JPEG")).size == (40, 30)
    path = tmp_path / "x.png"
    rgb.save(path)
    assert load_image(path).mode == "RGB"
    assert load_image(np.zeros((5, 6, 3), np.uint8)).size == (6, 5)


def test_not_an_image():
    with pytest.raises(InvalidImage, match="not a readable image"):
        load_image(b"%PDF-1.4 this is not an image")
    with pytest.raises(InvalidImage, match="empty"):
        load_image(b"")


def test_truncated_image():
    data = encode(Image.effect_noise((256, 256), 64).convert("RGB"))
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_too_many_pixels(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100)
    with pytest.raises(InvalidImage, match="megapixels"):
        load_image(encode(Image.new("RGB", (101, 100))))


def test_real_pixel_cap_is_checked_before_decoding():
    # A 7000x7000 PNG is small on disk (flat colour) but 49 megapixels.
    data = encode(Image.new("L", (7000, 7000)))
    with pytest.raises(InvalidImage, match="49.0 megapixels"):
        load_image(data)


def test_too_many_bytes(monkeypatch):
    monkeypatch.setattr(images, "MAX_BYTES", 1000)
    with pytest.raises(InvalidImage, match="limit is 0 MB|MB; the limit"):
        load_image(encode(Image.effect_noise((64, 64), 64)))


def test_cmyk_sixteen_bit_and_alpha_are_converted():
    cmyk = load_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    assert cmyk.mode == "RGB" and cmyk.getpixel((0, 0))[0] > 200
    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert load_image(encode(sixteen)).getpixel((0, 0)) == (255, 255, 255)
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(encode(rgba)).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white


def test_fit_to_grid():
    assert fit_to_grid(Image.new("RGB", (2048, 1000))).size == (1024, 496)
    assert fit_to_grid(Image.new("RGB", (100, 37))).size == (96, 32)
    assert fit_to_grid(Image.new("RGB", (5, 5))).size == (16, 16)
