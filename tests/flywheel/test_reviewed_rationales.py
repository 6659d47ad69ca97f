"""Human-reviewed critiques that the parrot export carries reach the distillation data (issue 14 item 8):
each becomes a pointwise sample with the reviewer's corrected scores, no teacher involved, and a pair
whose two reviewed critiques contradict its human label is left out and counted."""

from __future__ import annotations

import json
from pathlib import Path

from training.data import DataSource, read_pairs
from training.parrot.sft_data import build_sft_dataset
from tests.studio.conftest import ScriptedModels, make_services


def reviewed_session(services, request: str, preference: str) -> None:
    """One round of two images; the reviewer raises A's text faithfulness to 4 and accepts B's, then
    prefers `preference`."""
    list(services.run_loop(None, request, {"rounds": 1, "candidates": 2, "stop_threshold": None}))
    items = []
    while (item := services.next_critique(None)) is not None:
        items.append(item)
        first = len(items) == 1
        services.annotate(None, item["critique_id"], {"text_faithfulness": (
            {"verdict": "correct", "score": 4.0} if first else {"verdict": "accept"})})
    pair = services.next_pair(None)
    services.pick_pair(None, pair["candidate_a"], pair["candidate_b"], preference)


def sft_from_parrot_export(services, tmp_path: Path) -> tuple[dict, list[dict]]:
    export = Path(services.export(None, "parrot")["file"])
    pairs, _ = read_pairs(DataSource("storage", str(export)))
    out = tmp_path / "sft.jsonl"
    counts = build_sft_dataset([], pairs, out)
    return counts, [json.loads(line) for line in out.read_text().splitlines()]


def test_reviewed_critiques_become_pointwise_samples_with_the_corrections(tmp_path):
    services = make_services(tmp_path, ScriptedModels())
    try:
        reviewed_session(services, "a red kite over a beach", "A")
        counts, samples = sft_from_parrot_export(services, tmp_path)
    finally:
        services.engine.dispose()
    assert counts == {"pairwise": 0, "pointwise_derived": 0, "pointwise": 0, "reviewed": 2, "reviewed_conflicting": 0}
    assert {s["kind"] for s in samples} == {"reviewed"}
    corrected = [s for s in samples if s["corrected"]]
    assert len(corrected) == 1
    answer = corrected[0]["messages"][-1]["content"]
    assert "## Score: 4" in answer.split("Text Faithfulness", 1)[1].split("\n2.", 1)[0]
    for sample in samples:
        user = next(m["content"] for m in sample["messages"] if m["role"] == "user")
        assert "a red kite over a beach" in user and user.count("<image>") == len(sample["images"]) == 1
        assert "prefer" not in user.lower() and all(Path(p).is_file() for p in sample["images"])


def test_reviews_that_contradict_the_human_label_are_left_out(tmp_path):
    services = make_services(tmp_path, ScriptedModels())
    try:
        reviewed_session(services, "a red kite over a beach", "B")  # A was corrected upwards, yet B won
        counts, samples = sft_from_parrot_export(services, tmp_path)
    finally:
        services.engine.dispose()
    assert counts == {"pairwise": 0, "pointwise_derived": 0, "pointwise": 0, "reviewed": 0, "reviewed_conflicting": 2}
    assert samples == []
