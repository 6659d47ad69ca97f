"""Names for trained artefacts (a critic adapter, a generator LoRA) that tell them apart.

A database row records which model made a critique or an image. A student adapter or an RL LoRA
served or loaded from a folder must not be recorded under its base model's id (student critiques
would then be indistinguishable from the base's), nor under its folder path alone (a run retrained
into the same folder is another model). So an artefact is named by its folder (or file) name plus a
short hash of its content: `student@1a2b3c4d`. The hash covers every file's relative path and bytes,
so the same weights copied elsewhere keep their name and retrained weights get a new one.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

HASH_CHARS = 8
_CHUNK = 1 << 20


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".")
                                                                         for part in p.relative_to(path).parts))


@lru_cache(maxsize=64)
def _content_hash(path: str, stamp: tuple) -> str:
    """sha256 of the files' relative paths and bytes; `stamp` (sizes and mtimes) keys the cache."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in _files(root):
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()[:HASH_CHARS]


def artefact_id(path: str | Path) -> str:
    """`<folder or file name>@<8 hex digits of its content hash>`; a clear error for a missing path
    or an empty folder (nothing there to load)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No adapter or LoRA at {path}.")
    files = _files(path)
    if not files:
        raise FileNotFoundError(f"{path} is an empty folder: no adapter or LoRA weights in it.")
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    name = path.resolve().name
    return f"{name}@{_content_hash(str(path.resolve()), stamp)}"


def model_label(model_id: str) -> str:
    """How a model is named in records and tables: a local checkpoint folder (or file) by its
    `artefact_id`, since its path names neither the weights in it nor anything on another machine;
    anything else (a Hub id, a server's model name, an id that is already an artefact id) as given."""
    if not model_id:
        return model_id
    path = Path(model_id).expanduser()
    if not path.exists():
        return model_id
    try:
        return artefact_id(path)
    except FileNotFoundError:  # an empty folder: nothing in it to name
        return model_id


def with_lora(model_id: str, lora_path: str | Path | None) -> str:
    """A generator's recorded id: the base model's id, plus `+<LoRA artefact id>` when a LoRA is loaded."""
    if not lora_path:
        return model_id
    return f"{model_id}+{artefact_id(lora_path)}"
