"""HPDv2 (ymhao/HPDv2; layout confirmed from the dataset card).

test.json: prompt, image_path list, rank list (lower is better), raw_annotations. train.json:
prompt, file_path list, human_preference list (1 marks the preferred). Every pair of images of a
record becomes a pair; equal ranks tie.
"""

from __future__ import annotations

from collections.abc import Iterable

from training.data.base import PairBuilder, rank_pairs


def read_hpdv2(builder: PairBuilder, rows: Iterable[dict]) -> None:
    """Every pair of images of each HPDv2 record, labelled by rank (test) or human preference (train)."""
    for index, row in enumerate(rows):
        builder.report.rows += 1
        # test.json names the images image_path, train.json file_path (both confirmed from the dataset card)
        images = list(row.get("image_path") or row.get("file_path") or row.get("image") or [])
        if "rank" in row:
            ranks = list(row["rank"])
        elif "human_preference" in row:
            # One-hot (or vote counts): more votes is better, so rank by the negated count.
            ranks = [-float(v) for v in row["human_preference"]]
        else:
            builder.report.unknown_labels["no rank or human_preference"] += 1
            continue
        provenance = {k: row[k] for k in ("user_hash", "raw_annotations") if k in row}
        rank_pairs(builder, row.get("id", index), row.get("prompt"), images, ranks, provenance)
        if builder.full():
            return
