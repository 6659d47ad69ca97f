"""ImageRewardDB: rows of one image each (prompt_id, prompt, image or image_path, rank), paired by
rank within a prompt_id; or the publisher's grouped records (id, prompt, generations, ranking: image
paths and their ranks). Lower is better; equal ranks tie.

Partly confirmed: the grouped records and the direction come from the publisher's code (THUDM/
ImageReward train/src/rank_pair_dataset.py and test.py, which skip equal ranks where this reader keeps
them as ties, so evaluation can report with and without ties). The HF loading script declares image,
prompt_id, prompt; its per-image `rank` column is assumed to run the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from training.data.base import PairBuilder, rank_pairs


def read_imagerewarddb(builder: PairBuilder, rows: Iterable[dict]) -> None:
    """Pairs by rank within a prompt, from per-image rows or the publisher's grouped records."""
    groups: dict[Any, list[dict]] = {}
    for index, row in enumerate(rows):
        builder.report.rows += 1
        if "generations" in row and "ranking" in row:  # the publisher's grouped record
            rank_pairs(builder, row.get("id", index), row.get("prompt"), list(row["generations"] or []),
                        list(row["ranking"] or []), {"id": row.get("id", index)})
            if builder.full():
                return
            continue
        groups.setdefault(row.get("prompt_id"), []).append(row)
    for prompt_id, group in groups.items():
        images = [r.get("image") if r.get("image") is not None else r.get("image_path") for r in group]
        ranks = [r.get("rank") for r in group]
        rank_pairs(builder, prompt_id, group[0].get("prompt"), images, ranks, {"prompt_id": prompt_id})
        if builder.full():
            return
