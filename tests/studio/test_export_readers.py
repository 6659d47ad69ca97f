"""Where storage meets training: every export format, written from sessions the services made, read
back by the training reader that consumes it. A field renamed on either side fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from rr_core.critique import Preference
from rr_core.images import load_image, prepare_for_critic
from rr_core.rubric import Task
from storage.export import FORMATS, export_to_file
from training.data import DataSource, read_pairs
from training.parrot.sft_data import _chat, _pointwise_records
from training.rl.prompts import load_prompts
from tests.studio.conftest import ScriptedModels, make_services

READERS = {"pairs": "storage", "parrot": "storage", "dpo": "pickapic"}


@pytest.fixture(scope="module")
def studio_data(tmp_path_factory):
    """Two sessions (t2i and edit, two candidates a round), every critique accepted by the reviewer, and
    A/B picks: the first pair of each session A, the next one B."""
    root = tmp_path_factory.mktemp("studio-export")
    services = make_services(root, ScriptedModels())
    t2i = list(services.run_loop(None, "a red kite over a beach", {"rounds": 2, "candidates": 2,
                                                                     "stop_threshold": None}))[-1]
    source = Image.new("RGB", (48, 40), (10, 120, 200))
    edit = list(services.run_loop(None, "add a yellow hat", {"rounds": 1, "candidates": 2}, source))[-1]
    while (item := services.next_critique(None)) is not None:
        services.annotate(None, item["critique_id"], {"text_faithfulness": {"verdict": "accept"}})
    picks = []
    for preference in ("A", "B", "tie"):
        pair = services.next_pair(None)
        services.pick_pair(None, pair["candidate_a"], pair["candidate_b"], preference)  # A: the left image
        # Exports orient a pair lower candidate id first; the sides shown are shuffled, so flip when needed.
        flipped = pair["candidate_a"] > pair["candidate_b"]
        picks.append((*sorted((pair["candidate_a"], pair["candidate_b"])),
                      {"A": "B", "B": "A"}.get(preference, preference) if flipped else preference))
    yield {"services": services, "t2i": t2i, "edit": edit, "source": source, "picks": picks}
    services.engine.dispose()


def _export(studio_data, fmt: str, parquet: bool) -> Path:
    result = studio_data["services"].export(None, fmt, parquet=parquet)
    assert result["count"] > 0 and Path(result["file"]).is_file()
    return Path(result["file"])


def _images_by_round(view) -> dict[int, Image.Image]:
    return {c.candidate_id: c.image for r in view.rounds for c in r.candidates}


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
@pytest.mark.parametrize("fmt", sorted(READERS))
def test_preference_exports_read_back_as_pairs(studio_data, fmt, parquet):
    out = _export(studio_data, fmt, parquet)
    pairs, report = read_pairs(DataSource(READERS[fmt], str(out)))
    assert not report.unknown_labels and not report.skipped
    images = {**_images_by_round(studio_data["t2i"]), **_images_by_round(studio_data["edit"])}
    expected = {(a, b): Preference(p) for a, b, p in studio_data["picks"]}
    if fmt == "dpo":  # ties are left out unless asked for
        expected = {k: v for k, v in expected.items() if v is not Preference.TIE}
    assert len(pairs) == len(expected)
    for pair in pairs:
        image_a, image_b, source = pair.open()
        (a, b), = [k for k in expected if list(images[k[0]].getdata()) == list(image_a.getdata())
                   and list(images[k[1]].getdata()) == list(image_b.getdata())]
        assert pair.label is expected[(a, b)]
        assert pair.request in ("a red kite over a beach", "add a yellow hat")
        if fmt != "dpo":
            assert pair.provenance["candidate_a_id"] == a and pair.provenance["candidate_b_id"] == b
            assert pair.task is (Task.EDIT if pair.request == "add a yellow hat" else Task.T2I)
            assert (source is not None) == (pair.task is Task.EDIT)
        if fmt == "parrot":
            assert set(pair.provenance["rationales"]) == {"A", "B"}
            assert all(r["critique"]["scores"] for side in "AB" for r in pair.provenance["rationales"][side])


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
def test_sft_export_reads_back_as_training_samples(studio_data, tmp_path, parquet):
    out = _export(studio_data, "sft", parquet)
    samples = _pointwise_records(out, tmp_path / "images")
    stored = sum(len(r.candidates) for v in (studio_data["t2i"], studio_data["edit"]) for r in v.rounds)
    assert len(samples) == stored
    for sample in samples:
        assert [m["role"] for m in sample["messages"]] == ["system", "user", "assistant"]
        pictures = [load_image(p) for p in sample["images"]]
        chat = _chat(sample["messages"][:-1], pictures)  # raises when marks and images disagree
        assert sum(1 for turn in chat for part in turn["content"] if part.get("type") == "image") == len(pictures)
        assert "# Detailed Judgement" in sample["messages"][-1]["content"]
    edits = [s for s in samples if "add a yellow hat" in s["messages"][1]["content"]]
    assert edits and all(len(s["images"]) == 2 for s in edits)
    expected_source = list(prepare_for_critic(studio_data["source"]).getdata())
    assert all(list(load_image(s["images"][0]).getdata()) == expected_source for s in edits)


def test_embedded_exports_read_back(studio_data, tmp_path):
    services = studio_data["services"]
    with services.sessions() as db:
        for fmt in FORMATS:
            export_to_file(db, services.store, fmt, tmp_path / f"{fmt}.jsonl", embed_images=True)
    pairs, _ = read_pairs(DataSource("storage", str(tmp_path / "pairs.jsonl")))
    assert len(pairs) == 3 and all(isinstance(p.image_a, bytes) for p in pairs)
    samples = _pointwise_records(tmp_path / "sft.jsonl", tmp_path / "sft-images")
    assert samples and all(Path(p).is_file() for s in samples for p in s["images"])
    assert load_prompts(tmp_path / "rl-prompts.jsonl", "edit")[0].source_image.size == (48, 40)


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
def test_rl_prompts_read_back_per_task(studio_data, parquet):
    out = _export(studio_data, "rl-prompts", parquet)
    [t2i] = load_prompts(out, "t2i")
    [edit] = load_prompts(out, "edit")
    assert t2i.prompt == "a red kite over a beach" and t2i.source_image is None
    assert edit.prompt == "add a yellow hat"
    assert list(edit.source_image.getdata()) == list(studio_data["source"].getdata())
