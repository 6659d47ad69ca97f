"""Images as callers send them: data URLs or base64 from the API, file paths the web layer checked,
or PIL images from the UI, all through rr_core.images.load_image's checks."""

from __future__ import annotations

import base64
import binascii

from PIL import Image

from rr_core.errors import InvalidImage
from rr_core.images import load_image


def decode_image_payload(payload: str | bytes | Image.Image | None, what: str = "image") -> Image.Image | None:
    """An API image (a data URL or base64 PNG/JPEG/WebP), a file path the web layer already checked,
    or a PIL image, through load_image's checks."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return None
    if isinstance(payload, str) and (payload.startswith("data:") or len(payload) > 1024):
        text = payload.split(",", 1)[1] if payload.startswith("data:") else payload
        try:
            payload = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage(f"The {what} is not valid base64 image data.") from None
    elif isinstance(payload, str):
        raise InvalidImage(f"The {what} must be a data URL (data:image/png;base64,...) or base64 image bytes.")
    return load_image(payload)
