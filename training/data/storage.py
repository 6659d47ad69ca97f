"""The project's own export: `python -m storage.export --format pairs|parrot` (pair_id, task, request,
source_image, image_a, image_b, preference, provenance; parrot adds rationales, kept in provenance)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from rr_core.rubric import Task
from training.data.base import PairBuilder


def read_storage(builder: PairBuilder, rows: Iterable[dict]) -> None:
    """Pairs of the project's export; provenance (JSON text in Parquet) and PARROT rationales are kept."""
    for row in rows:
        builder.report.rows += 1
        provenance = row.get("provenance") or {}
        if isinstance(provenance, str):
            provenance = json.loads(provenance)
        if row.get("rationales") is not None:
            rationales = row["rationales"]
            provenance = {**provenance, "rationales": json.loads(rationales) if isinstance(rationales, str)
                          else rationales}
        provenance.update({k: row[k] for k in ("agreement", "n_judgements") if k in row})
        builder.add(row.get("pair_id"), Task.parse(row.get("task", "t2i")), row.get("request"),
                    row.get("image_a"), row.get("image_b"), builder.label(row.get("preference")),
                    row.get("source_image"), provenance)
        if builder.full():
            return
