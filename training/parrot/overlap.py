"""The train/evaluation guard: PARROT refuses to train on a pair that an evaluation set of the same
config contains.

Two pairs are the same when they share the request (compared with case and runs of whitespace
ignored) and at least one candidate image, compared by pixels (mode, size and raw pixel bytes), so
the same picture stored as a path in one set and as embedded bytes in another still matches. Only
evaluation pairs whose request also appears in the training data have their images opened, which
keeps the check cheap on large sets.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field

from rr_core.images import load_image
from training.data import ImageData, PreferencePair

OVERLAP_ACTIONS = ("refuse", "drop")
_SPACE = re.compile(r"\s+")


class EvalOverlapError(ValueError):
    """Training pairs that an evaluation set of the same config contains."""


def normalize_request(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def pixel_hash(data: ImageData) -> str:
    """A content hash of an image's pixels (mode, size, bytes), independent of how it is stored."""
    image = load_image(data)
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass
class Overlap:
    """Training pairs found in the evaluation data: (training pair id, evaluation pair id) each."""

    matches: list[tuple[str, str]] = field(default_factory=list)

    @property
    def train_ids(self) -> set[str]:
        return {train for train, _ in self.matches}

    def describe(self, limit: int = 3) -> str:
        examples = ", ".join(f"{t} = {e}" for t, e in self.matches[:limit])
        return f"{len(self.train_ids)} training pair(s) are in the evaluation data (e.g. {examples})"


def find_overlap(train: list[PreferencePair], evaluation: list[PreferencePair]) -> Overlap:
    """Training pairs sharing a request and a candidate image with an evaluation pair."""
    # 1. Index the training pairs by request; only evaluation pairs with a known request are opened.
    by_request: dict[str, list[PreferencePair]] = defaultdict(list)
    for pair in train:
        by_request[normalize_request(pair.request)].append(pair)
    hashes: dict[str | bytes, str] = {}

    def hash_of(data: ImageData) -> str:
        key = data if isinstance(data, str) else hashlib.sha256(data).digest()
        if key not in hashes:
            hashes[key] = pixel_hash(data)
        return hashes[key]

    # 2. Compare candidate images of pairs with the same request.
    overlap = Overlap()
    for eval_pair in evaluation:
        candidates = by_request.get(normalize_request(eval_pair.request))
        if not candidates:
            continue
        eval_images = {hash_of(eval_pair.image_a), hash_of(eval_pair.image_b)}
        for pair in candidates:
            if {hash_of(pair.image_a), hash_of(pair.image_b)} & eval_images:
                overlap.matches.append((pair.pair_id, eval_pair.pair_id))
    return overlap


def guard_training_pairs(train: list[PreferencePair], evaluation: list[PreferencePair],
                         action: str = "refuse") -> list[PreferencePair]:
    """The training pairs to use: all of them when none is in `evaluation`; else an EvalOverlapError
    ("refuse") or the pairs without the overlapping ones ("drop")."""
    if action not in OVERLAP_ACTIONS:
        raise ValueError(f"eval_overlap must be one of {', '.join(OVERLAP_ACTIONS)}, got {action!r}")
    overlap = find_overlap(train, evaluation)
    if not overlap.matches:
        return train
    if action == "refuse":
        raise EvalOverlapError(overlap.describe() + ": training on them would inflate the evaluation. Remove "
                               "the evaluation set from `data`, or set eval_overlap: drop to leave those pairs out.")
    return [pair for pair in train if pair.pair_id not in overlap.train_ids]
