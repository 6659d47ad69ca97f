"""PARROT's evaluation names a local critic by its identity (`name@hash8`, rr_core.model_identity), as
the rest of the project records model ids, not by the folder path it happened to be loaded from: a
student retrained into the same `student/merged` folder is another model, and a path says nothing
once the table leaves the machine."""

from __future__ import annotations

import json
import shutil

from rr_core.critics.tiny import ensure_tiny_critic
from rr_core.model_identity import artefact_id
from training.config import from_mapping
from training.parrot.pipeline import PipelineConfig, run_evaluate
from training.parrot.records import read_jsonl
from training.parrot.synthetic import write_synthetic_pairs


def _config(tmp_path, student=None) -> PipelineConfig:
    data = write_synthetic_pairs(tmp_path / "data", n_pairs=1, tie_every=0)
    return from_mapping(PipelineConfig, {
        "work_dir": str(tmp_path / "run"),
        "data": [{"format": "storage", "path": str(data), "name": "synthetic"}],
        **({"student": student} if student else {}),
        "evaluate": {"both_orders": False, "batch_size": 1, "limit": 1, "progress": False},
    })


def _labels(config: PipelineConfig, metrics: dict) -> tuple[str, set[str], str]:
    eval_dir = config.root / "eval"
    table = (eval_dir / "table.md").read_text()
    critics = {r["critic"] for r in read_jsonl(eval_dir / "results.jsonl")}
    return metrics["model_id"], critics, table


def test_the_distilled_student_is_labelled_by_its_identity_not_its_folder(tmp_path):
    config = _config(tmp_path)
    merged = config.root / "student" / "merged"
    shutil.copytree(ensure_tiny_critic(), merged)  # stands in for run_distill's merged student
    metrics = run_evaluate(config)  # the default: the student in work_dir/student/merged
    name, critics, table = _labels(config, metrics)
    assert name == artefact_id(merged) and name.startswith("merged@")
    assert critics == {name} and f"| {name} |" in table
    assert str(merged) not in table and str(config.root) not in json.dumps(sorted(critics))


def test_a_local_base_critic_is_labelled_by_its_identity(tmp_path):
    base = ensure_tiny_critic()
    config = _config(tmp_path, {"backend": "transformers",
                                "settings": {"model": str(base), "tasks": ["t2i"], "max_new_tokens": 8}})
    metrics = run_evaluate(config)
    name, critics, table = _labels(config, metrics)
    assert name == artefact_id(base) and critics == {name} and f"| {name} |" in table
    assert str(base) not in table


def test_only_a_local_checkpoint_is_renamed(tmp_path):
    from rr_core.model_identity import model_label

    (tmp_path / "empty").mkdir()
    for given in ("Qwen/Qwen3-VL-8B-Instruct", "student@1a2b3c4d", str(tmp_path / "empty"), ""):
        assert model_label(given) == given
    assert model_label(str(ensure_tiny_critic())) == artefact_id(ensure_tiny_critic())
