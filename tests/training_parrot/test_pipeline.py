"""The whole PARROT pipeline on a synthetic set: scripted teacher and judge, a real LoRA SFT of the
tiny Qwen3-VL whose loss falls, the student reloaded through TransformersCritic, and evaluation."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rr_core.critics.tiny import ensure_tiny_critic
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.critique import Preference
from rr_core.rubric import Task
from tests.scripted import ScriptedCritic, critique_text
from tests.training_parrot.conftest import anchored_label, judge_reading, pair_text
from training.config import from_mapping
from training.parrot.pipeline import PipelineConfig, run_distill, run_evaluate, run_filter, run_generate
from training.parrot.records import read_jsonl
from training.parrot.synthetic import write_synthetic_pairs

pytestmark = pytest.mark.slow


def teacher_script(conversation):
    """Argues the announced preference, except on ties, where its scores favour A (the filter must catch it)."""
    label = anchored_label(conversation)
    if label is Preference.TIE:
        return pair_text(Task.T2I, Preference.A)
    return pair_text(Task.T2I, label, summary_extra="As the human chose, it is the preferred image.")


def test_parrot_end_to_end(tmp_path):
    data = write_synthetic_pairs(tmp_path / "data", n_pairs=8, seed=1)
    pointwise = tmp_path / "pointwise.jsonl"
    first = json.loads(data.read_text().splitlines()[0])
    from rr_core.images import load_image
    from rr_core.prompts import build_pointwise

    record = build_pointwise("t2i", first["request"], load_image(first["image_a"])).to_sharegpt()
    record["messages"].append({"role": "assistant", "content": critique_text("t2i", 3.5)})
    record["images"] = [first["image_a"]]
    pointwise.write_text(json.dumps(record) + "\n")
    config = from_mapping(PipelineConfig, {
        "work_dir": str(tmp_path / "run"),
        "data": [{"format": "storage", "path": str(data), "name": "synthetic"}],
        "pointwise_files": [str(pointwise)],
        "derived_pointwise": {"enabled": False},  # its teacher only argues pairs (test_pointwise_derived.py)
        "generate": {"batch_size": 3, "concurrency": 2, "progress": False},
        "filter": {"progress": False},
        "distill": {"base_model": str(ensure_tiny_critic()), "method": "lora", "learning_rate": 5e-3,
                    "max_steps": 4, "batch_size": 2, "grad_accum": 1, "warmup_ratio": 0.0, "save_every": 2,
                    "lora_r": 8},
        "evaluate": {"both_orders": False, "batch_size": 4, "limit": 3, "progress": False},
    })

    # Phase 1: anchored generation, resumable.
    teacher = ScriptedCritic(teacher_script, tasks=("t2i",))
    summary = run_generate(config, teacher=teacher)
    assert summary["written"] == 8 and summary["failed"] == 0 and summary["completion_tokens"] > 0
    assert run_generate(config, teacher=teacher)["pending"] == 0 and len(teacher.seen) == 8
    preferences = Counter(json.loads(line)["preference"] for line in data.read_text().splitlines())
    assert Counter(anchored_label(c).value for c in teacher.seen) == preferences
    assert {r["pair_id"].split("/")[1]: r["label"] for r in read_jsonl(tmp_path / "run" / "rationales.jsonl")} == {
        json.loads(line)["pair_id"]: json.loads(line)["preference"] for line in data.read_text().splitlines()}

    # Phase 2: the contradicting tie is dropped, leaks are removed, the rest kept; SFT data mixed.
    judge = ScriptedCritic(lambda c: pair_text(Task.T2I, judge_reading(c)), tasks=("t2i",))
    report = run_filter(config, judge=judge)
    n_contradicting = sum(1 for r in read_jsonl(tmp_path / "run" / "rationales.jsonl")
                          if r["label"] == "tie" and "Image A matches" in r["text"])
    assert n_contradicting == 2  # every 4th synthetic pair is a tie
    assert report["kept"] == 8 - n_contradicting
    assert report["self_consistency"]["passed"] == 8 - n_contradicting
    assert report["sft_samples"] == {"pairwise": 8 - n_contradicting, "pointwise_derived": 0, "pointwise": 1}
    sft = list(read_jsonl(tmp_path / "run" / "sft.jsonl"))
    for sample in sft:
        prompt = sample["messages"][1]["content"]
        assert "overall verdict" not in prompt and "annotators" not in prompt  # no label in the input
        assert "human" not in sample["messages"][-1]["content"]
    assert {s["kind"] for s in sft} == {"pairwise", "pointwise"}

    # Phase 3: a real LoRA SFT of the tiny Qwen3-VL; the loss falls; checkpoints and a merged model.
    result = run_distill(config)
    assert result["steps"] == 4 and result["losses"][-1] < result["losses"][0]
    assert result["parameters"]["vision_trainable"] == 0 and result["parameters"]["trainable"] > 0
    student_dir = tmp_path / "run" / "student"
    assert (student_dir / "adapter" / "adapter_config.json").is_file()
    assert (student_dir / "checkpoints" / "step-2" / "trainer_state.json").is_file()

    # The student loads through the critic backend, and evaluation runs on it.
    student = TransformersCritic(TransformersCriticConfig(model=result["merged"], tasks=("t2i",),
                                                          max_new_tokens=8, batch_size=4))
    metrics = run_evaluate(config, critic=student)
    overall = metrics["overall"]
    # Random weights write garbage: every judgement is a failure, never counted right or wrong.
    assert overall["pairs"] == 3 and overall["failures"] == 3 and overall["accuracy_with_ties"] is None
    assert (tmp_path / "run" / "eval" / "table.md").is_file()
