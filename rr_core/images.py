"""Image intake and encoding: every upload passes `load_image` before a model or the store sees it.

`read_image_ref` is the one reader of image references (a PIL image, bytes, a data URL, bare base64,
a file path, a path relative to a base folder): the app's API, the dataset readers and the RL prompt
files all decide what a value is by its rule, then decode through `load_image`.

Limits and conversions are documented here because users hit them: an image that does not decode,
is larger than 40 megapixels or 20 MB, is rejected with a message saying which; CMYK, 16-bit,
palette and alpha images are converted to 8-bit RGB (alpha composited over white, so transparent
regions read as background rather than black).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rr_core.errors import InvalidImage

MAX_PIXELS = 40_000_000
MAX_BYTES = 20 * 1024 * 1024
CRITIC_MAX_SIDE = 1024
GRID = 16

ImageSource = "bytes | str | Path | Image.Image | np.ndarray"
ImageRef = bytes | Path | Image.Image | np.ndarray
"""What a reference resolves to before decoding: image bytes, a file, or an image already in memory."""

# File signatures of the formats PIL reads here: PNG, JPEG, GIF, BMP, TIFF (both byte orders); WebP is
# RIFF....WEBP. Bare base64 counts as image data only when its bytes start like an image, because a
# short file name ("cat1") is valid base64 too.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _open(data: bytes) -> Image.Image:
    if len(data) == 0:
        raise InvalidImage("The upload is empty (0 bytes); choose a PNG, JPEG or WebP image.")
    if len(data) > MAX_BYTES:
        raise InvalidImage(
            f"The image file is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixels(image)
            image.load()
    except InvalidImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"The upload is not a readable image ({exc.__class__.__name__}).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"The image is corrupt or truncated and cannot be decoded: {exc}") from exc
    return image


def _check_pixels(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InvalidImage(
            f"The image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels."
        )
    if width < 1 or height < 1:
        raise InvalidImage(f"The image has no pixels ({width}x{height}).")


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode (the documented conversions above)."""
    image = ImageOps.exif_transpose(image) if image.getexif() else image
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        array = np.clip(array / high * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise InvalidImage(f"Images in mode {mode!r} are not supported; save it as 8-bit RGB.") from exc


def load_image(source: "bytes | str | Path | Image.Image | np.ndarray") -> Image.Image:
    """Decode and validate an upload: returns an 8-bit RGB image or raises InvalidImage."""
    if isinstance(source, Image.Image):
        _check_pixels(source)
        return to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.dtype != np.uint8:
            raise InvalidImage(f"An image array must be uint8 HxW or HxWxC, got {source.dtype} {source.shape}.")
        image = Image.fromarray(source)
        _check_pixels(image)
        return to_rgb(image)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImage(f"No image file at {path}.")
        if path.stat().st_size > MAX_BYTES:
            raise InvalidImage(
                f"The image file is {path.stat().st_size / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB."
            )
        source = path.read_bytes()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return to_rgb(_open(bytes(source)))
    raise InvalidImage(f"Cannot read an image from a {type(source).__name__}.")


def fit_to_grid(image: Image.Image, max_side: int = CRITIC_MAX_SIDE, multiple: int = GRID) -> Image.Image:
    """Downscale so the long edge is <= max_side and both sides are multiples of `multiple`.

    Vision encoders patch images in 16-pixel units and the critics saw at most ~896x896 in training:
    bigger inputs only cost tokens.
    """
    width, height = image.size
    scale = min(1.0, max_side / max(width, height))
    new_w = max(multiple, int(width * scale) // multiple * multiple)
    new_h = max(multiple, int(height * scale) // multiple * multiple)
    if (new_w, new_h) == (width, height):
        return image
    return image.resize((new_w, new_h), Image.Resampling.LANCZOS)


def prepare_for_critic(image: Image.Image) -> Image.Image:
    return fit_to_grid(to_rgb(image), CRITIC_MAX_SIDE, GRID)


def png_bytes(image: Image.Image) -> bytes:
    """Fast PNG (zlib level 1): what the critic server receives, so encoding stays off the round's path."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_png_base64(image: Image.Image) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")


def data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + encode_png_base64(image)


def decode_data_url(url: str) -> Image.Image:
    """The inverse of `data_url`, for servers that receive OpenAI image_url parts (data URLs only)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise InvalidImage("Only base64 data URLs (data:image/...;base64,...) are accepted as images.")
    return read_image_ref(url)


def looks_like_image(data: bytes) -> bool:
    """Whether `data` starts with the signature of an image format PIL reads here."""
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _data_url_bytes(text: str, what: str) -> bytes:
    header, comma, payload = text.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidImage(f"The {what} data URL must be base64 (data:image/png;base64,...).")
    media_type = header[len("data:"):-len(";base64")]
    if media_type and not media_type.startswith("image/"):
        raise InvalidImage(f"The {what} data URL holds {media_type}, not an image.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(f"The {what} is not valid base64 image data.") from None


def _base64_bytes(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def resolve_image_ref(value: Any, what: str = "image", base_dir: str | Path | None = None) -> ImageRef | None:
    """What an image reference is, without decoding pixels (datasets keep references until used).

    The one rule, in order:
    - None, an empty or blank string, empty bytes of a dataset dict: no image (None).
    - A PIL image or a uint8 array: itself. Bytes: themselves. A `Path`: that file (relative ones
      against `base_dir`).
    - A dict as datasets store images ({"bytes": ..., "path": ...}): its bytes, else its path.
    - A string starting with "data:": a base64 data URL of an image type.
    - Any other string is a file path only when the caller names `base_dir` (dataset and prompt
      files; the web API never reads the server's files): an existing file (absolute, or relative
      to `base_dir`) wins; else base64 text whose bytes start like an image; else the path (its
      absence is reported when it is read).
    - Without `base_dir`, any other string must be bare base64 of the image bytes.
    `what` names the value in errors ("source image", "image_a").
    """
    if value is None:
        return None
    if isinstance(value, (Image.Image, np.ndarray)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Path):
        return value if value.is_absolute() or base_dir is None else Path(base_dir) / value
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        return resolve_image_ref(value.get("path"), what, base_dir)
    if not isinstance(value, str):
        raise InvalidImage(f"The {what} must be an image, image bytes, a data URL or base64 text, "
                           f"got {type(value).__name__}.")
    text = value.strip()
    if not text:
        return None
    if text.startswith("data:"):
        return _data_url_bytes(text, what)
    if base_dir is None:
        decoded = _base64_bytes(text)
        if decoded is None:
            raise InvalidImage(f"The {what} must be a data URL (data:image/png;base64,...) or base64 image bytes.")
        return decoded
    path = Path(text) if Path(text).is_absolute() else Path(base_dir) / text
    if _is_file(path):
        return path
    decoded = _base64_bytes(text)
    if decoded is not None and looks_like_image(decoded):
        return decoded
    return path


def _is_file(path: Path) -> bool:
    """`Path.is_file`, False for names the OS refuses (base64 text is often longer than a file name may be)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_image_ref(value: Any, what: str = "image", base_dir: str | Path | None = None) -> Image.Image | None:
    """The image an image reference names, decoded and checked by `load_image` (None when there is none).

    See `resolve_image_ref` for what counts as what. Every failure is an InvalidImage naming `what`.
    """
    ref = resolve_image_ref(value, what, base_dir)
    if ref is None:
        return None
    if isinstance(ref, Path) and not _is_file(ref):
        detail = "" if isinstance(value, Path) else " (and the text is not base64 image data)"
        name = str(ref) if len(str(ref)) <= 200 else str(ref)[:120] + "…"
        raise InvalidImage(f"No {what} file at {name}{detail}.")
    return load_image(ref)
