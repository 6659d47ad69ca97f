"""Multimodal RewardBench 2 (confirmed from facebookresearch/MMRB2: benchmark/edit.json as built,
benchmark/README.md, and evaluate/compute_scores/compute_accuracy.py, which reads pairs[*].id and .chosen).

The publisher's built t2i.json / edit.json: {"pairs": [...]} of id, prompt_content [["image", path],
["text", ...]], response_a/b with model_name and response_content, chosen A|B, human_annotations,
prompt_source, prompt_metadata; paths relative to the benchmark folder. An edit with several input
images keeps them all (the first as `source_image`, the rest as `extra_sources`; the critic sees them
side by side, see training.data.base.source_montage); responses that are not one image are counted
and skipped. Also read (this project's own spelling): flattened rows of pair_id, prompt_text,
prompt_images, response_a_images, response_b_images, chosen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rr_core.rubric import Task
from training.data.base import PairBuilder


def _content(parts: Any, kind: str) -> list[Any]:
    """The values of one kind ("image", "text") in MMRB2's [[kind, value], ...] content lists."""
    return [value for part_kind, value in (parts or []) if part_kind == kind]


def _read_mmrb2_published(builder: PairBuilder, row: dict, index: int, task: Task) -> None:
    """One pair of the publisher's t2i.json / edit.json (facebookresearch/MMRB2 benchmark/)."""
    prompt = row["prompt_content"]
    sources = _content(prompt, "image")
    outputs = [_content((row.get(side) or {}).get("response_content"), "image") for side in ("response_a", "response_b")]
    if any(len(images) != 1 for images in outputs):
        builder.report.skipped["response is not exactly one image"] += 1
        return
    if task is Task.T2I and sources:
        builder.report.skipped[f"{len(sources)} prompt images (text-to-image judges text-only prompts)"] += 1
        return
    if task is Task.EDIT and not sources:
        builder.report.skipped["0 prompt images (an edit needs a source image)"] += 1
        return
    provenance = {k: row[k] for k in ("prompt_source", "prompt_metadata", "human_annotations") if k in row}
    provenance.update({f"model_{side[-1]}": (row.get(side) or {}).get("model_name") for side in ("response_a", "response_b")})
    builder.add(row.get("id", row.get("pair_id", index)), task, "\n".join(_content(prompt, "text")), outputs[0][0],
                outputs[1][0], builder.label(row.get("chosen", row.get("human_preference"))),
                sources[0] if sources else None, provenance, extra_sources=sources[1:])


def read_mmrb2(builder: PairBuilder, rows: Iterable[dict], task: Task) -> None:
    """One pair per MMRB2 row, in the publisher's built layout or the flattened one."""
    for index, row in enumerate(rows):
        builder.report.rows += 1
        if "prompt_content" in row:
            _read_mmrb2_published(builder, row, index, task)
            if builder.full():
                return
            continue
        provenance = {k: row[k] for k in ("prompt_source", "response_a_model", "response_b_model") if k in row}
        prompt_images = list(row.get("prompt_images") or [])
        builder.add(row.get("pair_id", index), task, row.get("prompt_text"), row.get("response_a_images"),
                    row.get("response_b_images"), builder.label(row.get("chosen")), prompt_images[:1],
                    provenance, extra_sources=prompt_images[1:])
        if builder.full():
            return
