"""A synthetic preference set drawn with PIL: for each request ("three red circles") one image
matches it and the other gets the count or the colour wrong; some pairs are ties (both right).

Written in the project's own export layout (`storage` format: JSONL with image paths), so every
PARROT phase can be run end to end offline (tests, smoke runs) without any public data set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from training.data import DataSource
from training.parrot.records import JsonlWriter

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "yellow": (235, 200, 20)}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}


def draw_circles(count: int, colour: str, size: int = 96, seed: int = 0) -> Image.Image:
    """`count` circles of `colour` on white, in a row at a seed-dependent height."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    radius = size // 10
    y = rng.randint(radius + 2, size - radius - 2)
    for index in range(count):
        x = (index + 1) * size // (count + 1)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=COLOURS[colour])
    return image


def write_synthetic_pairs(out_dir: str | Path, n_pairs: int = 12, tie_every: int = 4, seed: int = 0) -> Path:
    """Write `pairs.jsonl` and its PNGs under `out_dir`; returns the JSONL path.

    Every `tie_every`-th pair is a tie (two correct images); the others have the correct image on a
    random side, so a critic that always answers "A" scores about half.
    """
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    path = out_dir / "pairs.jsonl"
    with JsonlWriter(path.with_suffix(".tmp")) as writer:
        for index in range(n_pairs):
            count, colour = rng.choice(list(NUMBERS)), rng.choice(list(COLOURS))
            good = draw_circles(count, colour, seed=seed * 1000 + index)
            if tie_every and index % tie_every == tie_every - 1:
                other, preference = draw_circles(count, colour, seed=seed * 1000 + index + 500), "tie"
            else:
                wrong_count = rng.choice([n for n in NUMBERS if n != count])
                wrong_colour = rng.choice([c for c in COLOURS if c != colour])
                other = (draw_circles(wrong_count, colour, seed=index) if rng.random() < 0.5
                         else draw_circles(count, wrong_colour, seed=index))
                preference = "A" if rng.random() < 0.5 else "B"
            first, second = (good, other) if preference != "B" else (other, good)
            paths = []
            for side, image in (("a", first), ("b", second)):
                file = images / f"{index:04d}_{side}.png"
                image.save(file)
                paths.append(str(file.resolve()))
            writer.write({"pair_id": f"syn-{index:04d}", "task": "t2i",
                          "request": f"{NUMBERS[count]} {colour} circles" if count > 1 else f"one {colour} circle",
                          "prompt_a": None, "prompt_b": None, "source_image": None,
                          "image_a": paths[0], "image_b": paths[1], "preference": preference,
                          "agreement": 1.0, "n_judgements": 1,
                          "provenance": {"synthetic": True, "count": count, "colour": colour}})
    path.with_suffix(".tmp").replace(path)
    return path


@dataclass
class SyntheticSet:
    """The synthetic set as a PARROT data source, drawn on first use (the offline smoke run needs no
    preparation step).

    out_dir: where `pairs.jsonl` and its PNGs are written; an existing `pairs.jsonl` is used as it is.
    n_pairs, tie_every, seed: as in `write_synthetic_pairs`.
    circle_critic: the rule-based circle counter (training.parrot.circle_critic) is the teacher and
        the judge; a config that sets this names no `teacher` or `judge` of its own.
    """

    out_dir: str = "runs/synthetic"
    n_pairs: int = 12
    tie_every: int = 4
    seed: int = 0
    circle_critic: bool = False

    def __post_init__(self) -> None:
        if self.n_pairs < 1:
            raise ValueError(f"synthetic.n_pairs must be >= 1, got {self.n_pairs}")

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / "pairs.jsonl"

    def source(self) -> DataSource:
        return DataSource("storage", str(self.path), name="synthetic")

    def ensure(self) -> Path:
        """The pairs file, drawn now if it is not there yet."""
        if self.path.is_file():
            return self.path
        return write_synthetic_pairs(self.out_dir, self.n_pairs, self.tie_every, self.seed)
