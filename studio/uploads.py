"""Source images as a designer uploads them: read, checked and brought to the working size once, on
upload, so that a bad or huge file is answered at once and in words, never after Run.

A file that is not an image, is empty or too large in bytes is refused with what is wrong with it. A
picture larger than the models work at is scaled down, and one whose sides are not multiples of the
models' patch size is rounded to them (its note says which, from what to what); only a
picture so large that decoding it could exhaust memory (a decompression bomb) is refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from rr_core.errors import InvalidImage
from rr_core.images import CRITIC_MAX_SIDE, GRID, MAX_BYTES, fit_to_grid, to_rgb

HARD_CAP_PIXELS = 150_000_000
"""Refused outright above this many pixels: a picture this size is almost always a decompression bomb,
and decoding it would take gigabytes of memory before it could be scaled down."""
READABLE = "PNG, JPEG, WebP, GIF, BMP or TIFF"


@dataclass(frozen=True)
class PreparedUpload:
    """The image the run will use and a sentence about what was done to it ("" when nothing was)."""

    image: Image.Image
    note: str


def prepare_upload(path: str | Path, max_side: int = CRITIC_MAX_SIDE) -> PreparedUpload:
    """Read an uploaded file as an 8-bit RGB image scaled to at most `max_side` on its long edge."""
    path = Path(path)
    name = path.name
    # 1. Bytes.
    if not path.is_file():
        raise InvalidImage(f"The upload “{name}” did not arrive; choose the file again.")
    size = path.stat().st_size
    if size == 0:
        raise InvalidImage(f"“{name}” is empty (0 bytes); choose a {READABLE} image.")
    if size > MAX_BYTES:
        raise InvalidImage(f"“{name}” is {size / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB. "
                           "Export it smaller (for example as JPEG) and try again.")
    # 2. Header only: what it is and how big it claims to be.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"“{name}” is not an image this app can read (its contents are not {READABLE}, "
                           "whatever its name says).") from exc
    except OSError as exc:
        raise InvalidImage(f"“{name}” could not be opened as an image: {exc}.") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage(f"“{name}” has no pixels ({width}x{height}).")
    if width * height > HARD_CAP_PIXELS:
        raise InvalidImage(f"“{name}” is {width}x{height} ({width * height / 1e6:.0f} megapixels); pictures over "
                           f"{HARD_CAP_PIXELS / 1e6:.0f} megapixels are refused. Scale it down first.")
    # 3. Decode (JPEG decodes straight at a reduced size), then bring it to the working size.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.draft("RGB", (max_side, max_side))
            image.load()
            rgb = to_rgb(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"“{name}” is corrupt or truncated and cannot be decoded ({exc}).") from exc
    fitted = fit_to_grid(rgb, max_side, GRID)
    return PreparedUpload(fitted, fit_note((width, height), fitted.size, max_side, GRID))


def fit_note(original: tuple[int, int], fitted: tuple[int, int], max_side: int, multiple: int) -> str:
    """Say what bringing the picture to the working size really did, so a designer is never told an
    image was "scaled down" when it was only nudged onto the model's size grid ("" when unchanged)."""
    if fitted == original:
        return ""
    (width, height), (new_w, new_h) = original, fitted
    if max(width, height) > max_side:
        return (f"Scaled down from {width}×{height} to {new_w}×{new_h}: the models work at most {max_side} "
                f"pixels on the long side, in multiples of {multiple}.")
    return (f"Rounded from {width}×{height} to {new_w}×{new_h}: the models read images in {multiple}-pixel "
            f"patches, so each side is rounded down to a multiple of {multiple}.")
