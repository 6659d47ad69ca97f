"""Evaluation: accuracy with and without ties, position consistency, failures apart, resumable."""

from __future__ import annotations

from PIL import Image

from rr_core.critique import Preference
from rr_core.rubric import Task
from tests.scripted import ScriptedCritic
from tests.training_parrot.conftest import pair_text
from training.data import PreferencePair
from training.evaluate import EvaluateConfig, evaluate_critic, paper_table
from training.parrot.records import read_jsonl

RED, BLUE = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))


def pairs() -> list[PreferencePair]:
    """Red is always right; the red image is A, B, or both (a tie)."""
    out = []
    for index, label in enumerate([Preference.A, Preference.B, Preference.A, Preference.TIE]):
        a, b = {Preference.A: (RED, BLUE), Preference.B: (BLUE, RED), Preference.TIE: (RED, RED)}[label]
        dims = {"text_faithfulness": label}
        out.append(PreferencePair(f"p{index}", Task.T2I, "a red square", a, b, label, source="mmrb", dimension_labels=dims))
    return out


def sees_red(conversation) -> str:
    """A perfect judge: prefers the red image (images in the prompt are Image A then Image B)."""
    a, b = [img.getpixel((0, 0))[0] > 128 for img in conversation.images]
    return pair_text(Task.T2I, Preference.TIE if a == b else (Preference.A if a else Preference.B))


def test_perfect_judge_and_position_consistency(tmp_path):
    metrics = evaluate_critic(ScriptedCritic(sees_red), pairs(), tmp_path / "r.jsonl", EvaluateConfig(progress=False))
    source = metrics["by_source"]["mmrb"]
    assert source["accuracy_with_ties"] == 1.0 and source["accuracy_without_ties"] == 1.0
    assert source["position_consistency"] == 1.0 and source["failures"] == 0
    assert source["dimension_agreement"] == {"text_faithfulness": 1.0}


def test_position_biased_judge(tmp_path):
    always_a = ScriptedCritic(lambda c: pair_text(Task.T2I, Preference.A))
    source = evaluate_critic(always_a, pairs(), tmp_path / "r.jsonl", EvaluateConfig(progress=False))["overall"]
    assert source["accuracy_with_ties"] == 0.5  # right on the two A pairs, wrong on B and the tie
    assert source["accuracy_without_ties"] == 2 / 3
    assert source["position_consistency"] == 0.0  # answers A in both orders: never the mirror


def test_failures_are_counted_apart_and_retried(tmp_path):
    calls = {"n": 0}

    def flaky(conversation):
        calls["n"] += 1
        return "garbage" if calls["n"] <= 2 else sees_red(conversation)

    out = tmp_path / "r.jsonl"
    first = evaluate_critic(ScriptedCritic(flaky), pairs(), out, EvaluateConfig(both_orders=False, batch_size=1,
                                                                                progress=False))["overall"]
    assert first["failures"] == 2 and first["evaluated_with_ties"] == 2 and first["accuracy_with_ties"] == 1.0
    second = evaluate_critic(ScriptedCritic(flaky), pairs(), out, EvaluateConfig(both_orders=False, progress=False))
    assert second["overall"]["failures"] == 0 and second["overall"]["accuracy_with_ties"] == 1.0
    assert len(list(read_jsonl(out))) == 6  # 4 first-run results + the 2 retried ones
    table = paper_table({"judge": second}, {"mmrb": "mmrb2-t2i"})
    assert table.splitlines()[2] == "| judge | 100.0 | - | - | - | - |"
