"""PARROT refuses to train on pairs that an evaluation set of the same config contains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from training.config import from_mapping
from training.data import DataSource, read_pairs
from training.parrot.overlap import EvalOverlapError, find_overlap, guard_training_pairs
from training.parrot.pipeline import PipelineConfig, run_generate, training_pairs
from training.parrot.synthetic import write_synthetic_pairs

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def _pairs(path: Path, name: str):
    return read_pairs(DataSource("storage", str(path), name=name))[0]


def test_a_pair_stored_differently_is_still_found(tmp_path):
    """Same request (other case and spacing) and the same pixels saved as another file: the same pair."""
    data = write_synthetic_pairs(tmp_path / "train", n_pairs=4, seed=3)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    copy = tmp_path / "eval"
    copy.mkdir()
    row = dict(rows[2])
    Image.open(row["image_a"]).save(copy / "renamed.png")
    row.update(request="  " + row["request"].upper() + " ", image_a=str(copy / "renamed.png"),
               image_b=str(Image.new("RGB", (8, 8)).save(copy / "other.png") or copy / "other.png"), pair_id="e1")
    (copy / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    train, evaluation = _pairs(data, "train"), _pairs(copy / "pairs.jsonl", "eval")
    overlap = find_overlap(train, evaluation)
    assert overlap.train_ids == {train[2].pair_id}
    with pytest.raises(EvalOverlapError, match="1 training pair\\(s\\) are in the evaluation data"):
        guard_training_pairs(train, evaluation)
    assert [p.pair_id for p in guard_training_pairs(train, evaluation, "drop")] == \
        [p.pair_id for p in train if p.pair_id != train[2].pair_id]
    # A different request with the same image is another pair (the same picture can answer two requests).
    row["request"] = "five blue circles and a square"
    (copy / "pairs.jsonl").write_text(json.dumps(row) + "\n")
    assert not find_overlap(train, _pairs(copy / "pairs.jsonl", "eval")).matches


def test_the_pipeline_refuses_before_the_teacher_is_asked(tmp_path):
    data = write_synthetic_pairs(tmp_path / "data", n_pairs=4, seed=1)
    config = from_mapping(PipelineConfig, {
        "work_dir": str(tmp_path / "run"), "data": [{"format": "storage", "path": str(data)}],
        "eval_data": [{"format": "storage", "path": str(data), "name": "bench"}]})
    with pytest.raises(EvalOverlapError, match="4 training pair"):
        run_generate(config, teacher=object())
    config.eval_overlap = "drop"
    with pytest.raises(ValueError, match="no training pairs left"):
        training_pairs(config)
    with pytest.raises(ValueError, match="eval_overlap must be one of refuse, drop"):
        from_mapping(PipelineConfig, {"eval_overlap": "ignore"})


def test_shipped_parrot_configs_train_on_no_evaluation_set():
    for path in CONFIGS.glob("parrot_*.yaml"):
        raw = yaml.safe_load(path.read_text())
        trained = {(d["format"], d["path"]) for d in raw.get("data") or []}
        evaluated = {(d["format"], d["path"]) for d in raw.get("eval_data") or []}
        assert not trained & evaluated, path.name
        assert raw.get("eval_overlap", "refuse") == "refuse", path.name
