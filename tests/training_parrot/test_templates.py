"""PARROT prompts keep the task and mode of the pairwise prompt they extend: a grammar-constrained
backend picks its critique grammar from them (without them every pair failed with "unknown task None")."""

from __future__ import annotations

import pytest
from PIL import Image

from rr_core.critics.tiny import ensure_tiny_critic
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.critique import ParseStatus, Preference
from rr_core.grammar import max_tokens_for
from rr_core.rubric import Task
from training.data import DataSource, read_pairs
from training.parrot.generate import GenerateConfig, generate_rationales
from training.parrot.records import read_jsonl
from training.parrot.synthetic import write_synthetic_pairs
from training.parrot.templates import anchored_conversation, judge_conversation


def _images(task: Task) -> tuple[Image.Image, Image.Image, Image.Image | None]:
    a, b = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue")
    return a, b, (Image.new("RGB", (32, 32), "white") if task is Task.EDIT else None)


@pytest.mark.parametrize("task", list(Task))
def test_anchored_and_judge_prompts_keep_task_and_mode(task):
    a, b, source = _images(task)
    anchored = anchored_conversation(task, "three red circles", a, b, source, Preference.B)
    judged = judge_conversation(task, "three red circles", a, b, source, "1. Text Faithfulness: A is right.")
    for conversation in (anchored, judged):
        assert conversation.task is task
        assert conversation.mode == "pairwise"
    assert "Image B is better" in anchored.user_text
    assert "A is right." in judged.user_text


@pytest.mark.slow
def test_grammar_constrained_teacher_writes_parsed_rationales(tmp_path):
    path = write_synthetic_pairs(tmp_path / "data", n_pairs=2, tie_every=0)
    pairs, _ = read_pairs(DataSource("storage", str(path), name="synthetic"))
    teacher = TransformersCritic(TransformersCriticConfig(
        model=str(ensure_tiny_critic()), tasks=("t2i",), constrained=True, batch_size=2,
        max_new_tokens=max_tokens_for(Task.T2I, "pairwise")))
    summary = generate_rationales(teacher, pairs, tmp_path / "rationales.jsonl",
                                  GenerateConfig(progress=False))
    records = read_jsonl(tmp_path / "rationales.jsonl")
    assert summary.failed == 0, [r["error"] for r in records]
    assert [r["status"] for r in records] == [ParseStatus.OK.value] * 2


@pytest.mark.slow
def test_grammar_constrained_judge_answers_every_pair(tmp_path):
    from training.parrot.circle_critic import CircleCritic
    from training.parrot.filtering import FilterConfig, filter_rationales

    path = write_synthetic_pairs(tmp_path / "data", n_pairs=2, tie_every=0)
    pairs, _ = read_pairs(DataSource("storage", str(path), name="synthetic"))
    generate_rationales(CircleCritic(), pairs, tmp_path / "rationales.jsonl", GenerateConfig(progress=False))
    judge = TransformersCritic(TransformersCriticConfig(
        model=str(ensure_tiny_critic()), tasks=("t2i",), constrained=True, batch_size=2,
        max_new_tokens=max_tokens_for(Task.T2I, "pairwise")))
    report = filter_rationales(tmp_path / "rationales.jsonl", pairs, tmp_path / "filter",
                               FilterConfig(both_orders=False, progress=False), judge)
    assert report["repredict"]["evaluated"] == 2
    assert report["repredict"]["judge_failed"] == 0
