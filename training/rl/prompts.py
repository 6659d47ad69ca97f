"""Training and held-out prompts: storage's rl-prompts export (JSONL or Parquet) or any JSONL file.

A record has `prompt`, optionally `task` (records of another task are skipped) and `source_image`
for edits: a file path (absolute, or relative to the data file), a data URL, base64 image text, or
image bytes, told apart by rr_core.images.read_image_ref.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from rr_core.errors import InvalidImage
from rr_core.images import read_image_ref
from rr_core.rubric import Task

logger = logging.getLogger(__name__)


class PromptDataError(ValueError):
    """A prompt file that cannot be used for this task."""


@dataclass(frozen=True)
class PromptItem:
    prompt: str
    source_image: Image.Image | None = field(default=None, repr=False, compare=False)


def _image(value, base: Path) -> Image.Image:
    """A record's source image by rr_core.images' one rule (a path relative to the data file, base64, bytes)."""
    try:
        return read_image_ref(value, "source_image", base_dir=base)
    except InvalidImage as exc:
        raise PromptDataError(str(exc)) from None


def _records(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PromptDataError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return records


def load_prompts(path: str | Path, task: Task | str) -> list[PromptItem]:
    """The prompts of `task` in `path`; edits must have a source image, text-to-image must not."""
    path = Path(path)
    task = Task.parse(task)
    if not path.is_file():
        raise PromptDataError(f"No prompt file at {path}.")
    items, skipped = [], 0
    for record in _records(path):
        if "prompt" not in record or not str(record["prompt"]).strip():
            raise PromptDataError(f"{path}: every record needs a non-empty prompt, got {sorted(record)}")
        if record.get("task") and Task.parse(record["task"]) is not task:
            skipped += 1
            continue
        source = record.get("source_image")
        if task is Task.EDIT and not source:
            raise PromptDataError(f"{path}: edit prompt {record['prompt']!r} has no source_image")
        if task is Task.T2I and source:
            raise PromptDataError(f"{path}: text-to-image prompt {record['prompt']!r} has a source_image")
        items.append(PromptItem(str(record["prompt"]), _image(source, path.parent) if source else None))
    if skipped:
        logger.info("skipped %d prompts of another task in %s", skipped, path)
    if not items:
        raise PromptDataError(f"{path} holds no {task.value} prompts.")
    return items
