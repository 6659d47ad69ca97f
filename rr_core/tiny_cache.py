"""Building the tiny offline checkpoints once per recipe, atomically, in the model cache.

A cached folder carries a stamp of the recipe that built it (a version plus a fingerprint of the
builder's inputs, such as the text the tiny tokenizer is trained on). A folder with another stamp,
or none, is rebuilt: a stale checkpoint would otherwise let a test pass locally on a model the
current code no longer builds, and fail on a fresh machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from rr_core.paths import cache_dir as default_cache_dir

logger = logging.getLogger(__name__)

STAMP_FILE = "rr_tiny_recipe.txt"


def fingerprint(parts: Iterable[str]) -> str:
    """A short, stable hash of a builder's inputs, for the recipe stamp."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def is_current(folder: Path, recipe: str) -> bool:
    stamp = folder / STAMP_FILE
    return stamp.is_file() and stamp.read_text() == recipe


def build_once(name: str, build: Callable[[Path], None], cache_dir: Path | str | None, recipe: str) -> Path:
    """`cache_dir/name`, built by `build(tmp)` in a temporary sibling then renamed into place.

    Two processes building at once both end with one complete folder: the loser of the rename
    discards its copy. A folder stamped with another recipe (or none) is replaced.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / name
    if is_current(target, recipe):
        return target
    root.mkdir(parents=True, exist_ok=True)
    logger.info("building %s in %s (recipe %s)", name, target, recipe)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build(tmp)
        (tmp / STAMP_FILE).write_text(recipe)
        if target.exists() and not is_current(target, recipe):
            stale = Path(tempfile.mkdtemp(prefix=f".{name}-stale-", dir=root))
            try:
                os.rename(target, stale / name)
            except OSError:
                pass
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_current(target, recipe):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
