"""GenAI-Bench (features confirmed from the dataset card).

genai-bench-t2i, image_generation: prompt, left_model, left_image, right_model, right_image, vote_type.
genai-bench-edit, image_edition: source_prompt, target_prompt, instruct_prompt, source_image,
left_output_image, right_output_image, vote_type. vote_type: leftvote, rightvote, tievote,
bothbad_vote (a tie).
"""

from __future__ import annotations

from collections.abc import Iterable

from rr_core.rubric import Task
from training.data.base import PairBuilder


def read_genai_bench(builder: PairBuilder, rows: Iterable[dict], task: Task) -> None:
    """One pair per GenAI-Bench vote; `task` picks the generation or the edition layout."""
    for index, row in enumerate(rows):
        builder.report.rows += 1
        provenance = {k: row[k] for k in ("left_model", "right_model", "tstamp", "judge") if k in row}
        if task is Task.T2I:
            builder.add(row.get("index", index), task, row.get("prompt"), row.get("left_image"),
                        row.get("right_image"), builder.label(row.get("vote_type")), provenance=provenance)
        else:
            provenance.update({k: row[k] for k in ("source_prompt", "target_prompt") if k in row})
            builder.add(row.get("index", index), task, row.get("instruct_prompt"), row.get("left_output_image"),
                        row.get("right_output_image"), builder.label(row.get("vote_type")),
                        row.get("source_image"), provenance)
        if builder.full():
            return
