import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rr_core import images
from rr_core.errors import InvalidImage
from rr_core.images import decode_data_url, fit_to_grid, load_image, read_image_ref, resolve_image_ref


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


# --- read_image_ref: the one reader of image references ------------------------------------------

RED = Image.new("RGB", (8, 6), (255, 0, 0))


def b64(image=RED, fmt="PNG") -> str:
    return base64.b64encode(encode(image, fmt)).decode("ascii")


@pytest.mark.parametrize("empty", [None, "", "   \n", {"bytes": None, "path": None}])
def test_nothing_is_no_image(empty, tmp_path):
    assert read_image_ref(empty) is None
    assert read_image_ref(empty, base_dir=tmp_path) is None


@pytest.mark.parametrize("value", [
    RED, encode(RED), bytearray(encode(RED)), "data:image/png;base64," + b64(), b64(), "  " + b64() + "\n",
    {"bytes": encode(RED), "path": "ignored.png"}, np.asarray(RED), "data:;base64," + b64(),
])
def test_every_in_memory_form_reads_as_the_same_rgb_image(value):
    image = read_image_ref(value)
    assert image.mode == "RGB" and image.size == (8, 6) and image.getpixel((0, 0)) == (255, 0, 0)


def test_jpeg_and_webp_base64_are_images_too(tmp_path):
    assert read_image_ref(b64(fmt="JPEG"), base_dir=tmp_path).size == (8, 6)
    assert read_image_ref(b64(fmt="WEBP"), base_dir=tmp_path).size == (8, 6)


@pytest.mark.parametrize(("value", "message"), [
    ("data:image/png;base64,@@not base64@@", "The source image is not valid base64 image data"),
    ("data:image/png,rawbytes", "The source image data URL must be base64"),
    ("data:text/plain;base64,aGVsbG8=", "The source image data URL holds text/plain, not an image"),
    ("just some words", r"The source image must be a data URL \(data:image/png;base64,...\) or base64 image bytes"),
    ("data:image/png;base64," + "QUJD" * 400, "not a readable image"),
    (12, "The source image must be an image, image bytes, a data URL or base64 text, got int"),
])
def test_bad_references_get_specific_errors(value, message):
    with pytest.raises(InvalidImage, match=message):
        read_image_ref(value, "source image")


def test_without_a_base_folder_a_string_is_never_a_server_file(tmp_path):
    """The web API passes user text: it must not read files on the server, even ones that exist."""
    path = tmp_path / "secret.png"
    RED.save(path)
    with pytest.raises(InvalidImage, match="must be a data URL"):
        read_image_ref(str(path))


def test_paths_absolute_and_relative_to_the_base_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    RED.save(tmp_path / "imgs" / "a.png")
    assert read_image_ref("imgs/a.png", base_dir=tmp_path).size == (8, 6)
    assert read_image_ref(str(tmp_path / "imgs" / "a.png"), base_dir="/elsewhere").size == (8, 6)
    assert read_image_ref(Path("imgs/a.png"), base_dir=tmp_path).size == (8, 6)
    assert read_image_ref({"bytes": None, "path": "imgs/a.png"}, base_dir=tmp_path).size == (8, 6)
    assert resolve_image_ref("imgs/a.png", base_dir=tmp_path) == tmp_path / "imgs" / "a.png"


def test_an_existing_file_wins_over_base64_and_base64_needs_image_bytes(tmp_path):
    RED.save(tmp_path / "cafe", format="PNG")  # "cafe" is valid base64 too
    assert resolve_image_ref("cafe", base_dir=tmp_path) == tmp_path / "cafe"
    assert resolve_image_ref("beef", base_dir=tmp_path) == tmp_path / "beef"  # base64, but not of an image
    assert isinstance(resolve_image_ref(b64(), base_dir=tmp_path), bytes)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(InvalidImage, match=r"No image_a file at .*missing.png \(and the text is not base64"):
        read_image_ref("missing.png", "image_a", base_dir=tmp_path)
    with pytest.raises(InvalidImage, match=r"No image file at .*gone.png\.$"):
        read_image_ref(tmp_path / "gone.png")
    with pytest.raises(InvalidImage, match="…"):  # long base64-like garbage: a short, readable message
        read_image_ref("QUJD" * 400, base_dir=tmp_path)


def test_data_urls_for_servers_only():
    assert decode_data_url("data:image/png;base64," + b64()).size == (8, 6)
    with pytest.raises(InvalidImage, match="Only base64 data URLs"):
        decode_data_url(b64())
