"""Pick-a-Pic v2 parquet (yuvalkirstain/pickapic_v2; features confirmed from the dataset card).

caption, jpg_0, jpg_1, label_0, label_1 (0.5/0.5 is a tie), has_label, ranking_id, image_0_uid,
image_1_uid, model_0, model_1, user_id.
"""

from __future__ import annotations

from collections.abc import Iterable

from rr_core.critique import Preference
from rr_core.rubric import Task
from training.data.base import PairBuilder


def read_pickapic(builder: PairBuilder, rows: Iterable[dict]) -> None:
    """One pair per Pick-a-Pic row; rows without a label are counted, 0.5/0.5 is a tie."""
    for index, row in enumerate(rows):
        builder.report.rows += 1
        if row.get("has_label") is False:
            builder.report.skipped["has_label is false"] += 1
            continue
        try:
            l0, l1 = float(row["label_0"]), float(row["label_1"])
        except (KeyError, TypeError, ValueError):
            builder.report.unknown_labels[f"label_0={row.get('label_0')!r} label_1={row.get('label_1')!r}"] += 1
            continue
        label = Preference.TIE if l0 == l1 else (Preference.A if l0 > l1 else Preference.B)
        pair_id = row.get("ranking_id") or f"{row.get('image_0_uid', index)}-{row.get('image_1_uid', index)}"
        provenance = {k: row[k] for k in ("model_0", "model_1", "user_id", "image_0_uid", "image_1_uid")
                      if k in row}
        builder.add(pair_id, Task.T2I, row.get("caption"), row.get("jpg_0") or row.get("image_0_url"),
                    row.get("jpg_1") or row.get("image_1_url"), label, provenance=provenance)
        if builder.full():
            return
