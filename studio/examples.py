"""Cached examples for the first screen: a finished loop per example, computed once and kept on disk.

A visitor who clicks an example should see a whole Generate–Critique–Refine loop at once, not wait
minutes for the GPU. `ExampleCache.warm(examples)` runs each example's loop at start, only with a real
critic (the tiny offline models' critiques are meaningless, so nothing is cached for them), and keeps
the finished run under the data folder (`<data>/examples`, persistent storage on a Space), keyed by the
example and the models that made it: a restart reuses it, a different model recomputes it.
`ExampleCache.view(example)` then returns the finished `RunView` for the UI's examples to show.

An example's run belongs to no one: it is not a session in the database (so no user owns, lists or
exports it) and the loop runs as the app's own start-up job.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from rr_core.loop import CritiqueParsed, ImageReady, LoopDone, RoundDone, RoundStarted
from rr_core.paths import data_dir
from rr_core.prompts import validate_request
from rr_core.rubric import Task
from studio.context import ModelsLike
from studio.run_model import Run
from studio.runs import loop_config
from studio.views import RunView

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bumped when what a cached file holds changes, so old files are recomputed rather than misread."""


@dataclass(frozen=True)
class Example:
    """One example of the first screen: the prompt (edit instruction), loop settings, a source image
    for an edit."""

    prompt: str
    settings: dict[str, Any] = field(default_factory=dict)
    source: Image.Image | None = field(default=None, compare=False)


class ExampleCache:
    """Finished example runs under `folder` (default `<data>/examples`)."""

    def __init__(self, models: ModelsLike, folder: Path | None = None) -> None:
        self.models = models
        self.folder = Path(folder) if folder is not None else data_dir() / "examples"

    @property
    def enabled(self) -> bool:
        """Only a real critic's loops are worth showing; the tiny preset carries a banner instead."""
        return not self.models.preset.describe().get("banner")

    def key(self, example: Example) -> str:
        """Names the example and the models that compute it (a new critic or generator recomputes)."""
        described = self.models.preset.describe()
        source = b""
        if example.source is not None:
            buffer = io.BytesIO()
            example.source.save(buffer, format="PNG")
            source = buffer.getvalue()
        text = json.dumps({"format": CACHE_FORMAT, "prompt": example.prompt, "settings": example.settings,
                           "critic": described.get("critic"), "generators": described.get("generators")},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode() + source).hexdigest()[:24]

    def view(self, example: Example) -> RunView | None:
        """The cached finished run of `example`, or None when it was not computed."""
        path = self.folder / f"{self.key(example)}.pickle"
        if not path.is_file():
            return None
        with path.open("rb") as handle:  # written by this app into its own data folder
            run = pickle.load(handle)
        return RunView(run, status="Example: a finished loop, computed once when the app started.")

    def warm(self, examples: Iterable[Example], force: bool = False) -> dict[str, RunView]:
        """Compute and store every example not cached yet; returns each example's view by prompt.
        Without a real critic (and not `force`d, for tests) nothing is computed. A failing example is
        logged and left out, so the app still starts."""
        if not (force or self.enabled):
            return {}
        self.folder.mkdir(parents=True, exist_ok=True)
        views: dict[str, RunView] = {}
        for example in examples:
            try:
                view = self.view(example) or self._compute(example)
            except Exception:  # an example is a nicety: never a reason for the app not to start
                logger.exception("example %r could not be computed", example.prompt)
                continue
            views[example.prompt] = view
        return views

    def _compute(self, example: Example) -> RunView:
        prompt = validate_request(example.prompt)
        task = Task.EDIT if example.source is not None else Task.T2I
        config = loop_config(example.settings)
        run = Run.new(f"example-{self.key(example)}", task, prompt, example.source)
        for event in self.models.loop(task).run(prompt, config, source_image=example.source, state=run.state):
            _replay(run, event)
        path = self.folder / f"{self.key(example)}.pickle"
        partial = path.with_suffix(".partial")
        with partial.open("wb") as handle:
            pickle.dump(run, handle)
        partial.replace(path)  # a crash mid-write leaves no half file under the real name
        logger.info("cached example %r (%d rounds)", prompt, len(run.state.rounds))
        return self.view(example)


def _replay(run: Run, event: Any) -> None:
    """What a loop event changes in the run model (the same `Run` methods the live runs use)."""
    if isinstance(event, RoundStarted):
        run.start_round(event.round_index, event.prompt)
    elif isinstance(event, ImageReady):
        run.add_image(event.candidate_index, event.seed, event.image)
    elif isinstance(event, CritiqueParsed):
        run.set_critique(event.candidate_index, event.critique)
    elif isinstance(event, RoundDone):
        run.finish_round(event.result)
    elif isinstance(event, LoopDone):
        run.finish(event.result)
