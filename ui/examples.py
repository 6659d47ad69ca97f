"""Examples a first-time visitor can click, as Spaces users expect: prompts for text-to-image, and
source image + instruction pairs for edits. The edit sources are drawn here with PIL (no downloads,
no third-party pictures) and kept in assets/examples; `python -m ui.examples` draws them again.

With a real critic each example's finished loop is cached (studio.examples.ExampleCache) and
`ExampleRuns` wires it to the screen: warmed in a background thread at start, and a click on a cached
example shows its finished run in the results panel at once; one not cached yet only fills the inputs.
With the tiny preset nothing is computed and a click only fills the inputs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from rr_core.errors import RRError
from studio.examples import Example, ExampleCache
from studio.scheduling import FairScheduler
from studio.views import RunView
from ui.mappers import Values, result_values, slider_value
from ui.panels import ResultsPanel

logger = logging.getLogger(__name__)

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


CREATE_SETTINGS = {"seed": 0, "steps": 4, "rounds": 3, "candidates": 1, "stop_threshold": 3.5}
EDIT_SETTINGS = {"seed": 0, "steps": 4, "rounds": 2, "candidates": 1, "stop_threshold": 3.5}
"""The settings an example's cached loop runs with: the Create and Edit forms' defaults (app.py), so the
finished run is what a visitor would get by clicking the example and then the run button."""


def default_examples() -> list[Example]:
    """The examples on the Create and Edit tabs, as the cache computes them."""
    t2i = [Example(row[0], dict(CREATE_SETTINGS)) for row in T2I_EXAMPLES]
    edits = []
    for path, instruction in edit_examples():
        with Image.open(path) as image:
            edits.append(Example(instruction, dict(EDIT_SETTINGS), image.convert("RGB")))
    return t2i + edits


EXAMPLES_USER = "examples"
"""Whose turn on the GPU an example's loop takes in the scheduler: the app's own start-up job."""


class ExampleRuns:
    """The examples' cached runs as the UI uses them: warmed in the background, shown on a click.

    With `slots` (the runs' FairScheduler) each example not cached yet takes its turn on the GPU like a
    visitor's run, so warming never runs beside a visitor's loop on a GPU that holds one at a time."""

    def __init__(self, cache: ExampleCache, examples: Sequence[Example] | None = None,
                 slots: FairScheduler | None = None) -> None:
        self.cache = cache
        self.examples = list(default_examples() if examples is None else examples)
        self.slots = slots

    @property
    def enabled(self) -> bool:
        """Only with a real critic (the cache's rule): the tiny preset computes and shows nothing."""
        return self.cache.enabled

    def start(self, before: Callable[[], None] | None = None) -> threading.Thread | None:
        """Warm the cache in a daemon thread, so the server never waits for it; `before` runs first in
        that thread (loading the models, so the examples do not load them a second time). Returns the
        thread, or None when nothing is to be computed (and then `before` is not run either).

        On ZeroGPU the loop's GPU work already goes through ui.zerogpu's decorated calls (its proxies
        are installed on the models before this starts), so this thread holds no lease itself."""
        if not self.enabled:
            return None
        thread = threading.Thread(target=self._warm, args=(before,), name="example-runs", daemon=True)
        thread.start()
        return thread

    def _warm(self, before: Callable[[], None] | None) -> None:
        try:
            if before is not None:
                before()
        except Exception:  # a background nicety: the server keeps serving without the examples
            logger.exception("the models could not be loaded; no example runs are computed")
            return
        for example in self.examples:
            try:
                if self.cache.view(example) is None:
                    self._compute_in_turn(example)
            except RRError as error:  # the queue is full of visitors' runs: they come first
                logger.warning("example %r not computed now: %s", example.prompt, error)
            except Exception:  # an unreadable stored run: logged, the other examples still computed
                logger.exception("example %r could not be read or computed", example.prompt)

    def _compute_in_turn(self, example: Example) -> None:
        if self.slots is None:
            self.cache.warm([example])
            return
        with self.slots.slot(EXAMPLES_USER) as ticket:
            ticket.wait()
            self.cache.warm([example])

    def view(self, prompt: str) -> RunView | None:
        """The finished run of the example with this prompt (or instruction), None when it is no
        example, nothing is cached (tiny preset) or it is not computed yet."""
        if not self.enabled or not isinstance(prompt, str):
            return None
        for example in self.examples:
            if example.prompt == prompt.strip():
                return self.cache.view(example)
        return None

    def show(self, panel: ResultsPanel, slider: Any = None) -> Callable[[Any], Values]:
        """The click handler of an example list (`gr.Examples.dataset`, which hands it the clicked
        `(index, row)`, the row's last value the prompt or instruction): the cached run on `panel` (and
        its before/after on `slider` for an edit), or nothing, which leaves the panel as it is while
        the example only fills the inputs."""

        def shown(sample: Any) -> Values:
            row = sample[1] if isinstance(sample, (tuple, list)) and len(sample) == 2 else None
            view = self.view(row[-1]) if isinstance(row, (tuple, list)) and row else None
            if view is None:
                return {}
            values = result_values(panel, view)
            if slider is not None:
                values[slider] = slider_value(view)
            return values

        return shown


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for written in make_examples():
        logging.getLogger("ui.examples").info("%s", written)
