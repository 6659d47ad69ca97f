"""Examples a first-time visitor can click, as Spaces users expect: prompts for text-to-image, and
source image + instruction pairs for edits. The edit sources are drawn here with PIL (no downloads,
no third-party pictures) and kept in assets/examples; `python -m ui.examples` draws them again."""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, ImageDraw

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"

T2I_EXAMPLES = [
    ["a red fox in the snow at dawn, soft golden light"],
    ["a ceramic coffee mug with the word HELLO painted on it, studio photo"],
    ["an isometric tiny house on a floating island, pastel colours"],
    ["a watercolour of a lighthouse in a storm"],
]


def _landscape(size: tuple[int, int]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height * 2 // 3):  # a blue sky that pales towards the horizon
        t = y / (height * 2 / 3)
        draw.line([(0, y), (width, y)], fill=(int(70 + 120 * t), int(130 + 90 * t), int(220 + 25 * t)))
    draw.ellipse([width * 0.7, height * 0.12, width * 0.82, height * 0.28], fill=(255, 214, 90))
    draw.polygon([(0, height * 0.7), (width * 0.35, height * 0.5), (width * 0.7, height * 0.72),
                  (width, height * 0.58), (width, height), (0, height)], fill=(70, 140, 70))
    return image


def _mug(size: tuple[int, int]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size, (236, 228, 214))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height * 0.7, width, height], fill=(150, 105, 70))  # the table
    left, top, right, bottom = width * 0.35, height * 0.35, width * 0.6, height * 0.75
    draw.rectangle([left, top, right, bottom], fill=(200, 40, 40))
    draw.ellipse([left, top - height * 0.04, right, top + height * 0.04], fill=(150, 25, 25))
    draw.arc([right - width * 0.04, top + height * 0.08, right + width * 0.1, top + height * 0.28],
             270, 90, fill=(200, 40, 40), width=10)
    return image


EDIT_SOURCES = {"landscape.png": _landscape, "mug.png": _mug}
EDIT_INSTRUCTIONS = {"landscape.png": "make the sky purple at sunset", "mug.png": "make the mug blue"}


def make_examples(folder: Path = EXAMPLES_DIR) -> list[Path]:
    """Draw the edit sources into `folder` (only the missing ones); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in EDIT_SOURCES.items():
        path = folder / name
        if not path.exists():
            draw((512, 384)).save(path)
        paths.append(path)
    return paths


def edit_examples() -> list[list[str]]:
    """[source image path, instruction] rows for gr.Examples on the Edit tab."""
    return [[str(path), EDIT_INSTRUCTIONS[path.name]] for path in make_examples()]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for written in make_examples():
        logging.getLogger("ui.examples").info("%s", written)
