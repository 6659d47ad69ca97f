"""Evaluation: accuracy with and without ties, position consistency, failures apart, resumable."""

from __future__ import annotations

import os

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


def test_two_critics_in_one_results_file_keep_their_own_numbers(tmp_path):
    out = tmp_path / "r.jsonl"
    config = EvaluateConfig(progress=False)
    perfect = evaluate_critic(ScriptedCritic(sees_red), pairs(), out, config)["overall"]
    always_a = ScriptedCritic(lambda c: pair_text(Task.T2I, Preference.A))
    always_a.model_id = "always-a"
    biased = evaluate_critic(always_a, pairs(), out, config)
    assert len(always_a.seen) == 8  # judged, not read from the first critic's results
    assert biased["model_id"] == "always-a"
    assert biased["overall"]["accuracy_with_ties"] == 0.5 and perfect["accuracy_with_ties"] == 1.0
    again = evaluate_critic(ScriptedCritic(sees_red), pairs(), out, config)["overall"]
    assert again["accuracy_with_ties"] == 1.0 and again["position_consistency"] == 1.0


def test_same_model_with_other_decoding_is_another_critic(tmp_path):
    from rr_core.critics.base import DecodeSettings

    out = tmp_path / "r.jsonl"
    config = EvaluateConfig(both_orders=False, progress=False)
    evaluate_critic(ScriptedCritic(sees_red), pairs(), out, config)
    sampled = ScriptedCritic(lambda c: "garbage", settings=DecodeSettings(temperature=0.7))
    assert evaluate_critic(sampled, pairs(), out, config)["overall"]["failures"] == 4
    assert len(sampled.seen) == 4


def test_a_changed_pair_with_the_same_id_is_judged_again(tmp_path):
    out = tmp_path / "r.jsonl"
    config = EvaluateConfig(both_orders=False, progress=False)
    critic = ScriptedCritic(sees_red)
    evaluate_critic(critic, pairs(), out, config)
    changed = pairs()
    changed[0] = PreferencePair("p0", Task.T2I, "a red square", BLUE, RED, Preference.B, source="mmrb")
    metrics = evaluate_critic(critic, changed, out, config)["overall"]
    assert len(critic.seen) == 5  # the four first judgements, then only the changed pair
    assert metrics["pairs"] == 4 and metrics["accuracy_with_ties"] == 1.0


def test_identity_follows_what_changes_answers_not_speed(tmp_path):
    from rr_core.critics.transformers_critic import TransformersCriticConfig
    from training.evaluate import critic_identity

    def identity(**settings) -> str:
        critic = ScriptedCritic(sees_red)
        critic.config = TransformersCriticConfig(model="org/critic", **settings)
        return critic_identity(critic)

    assert identity(batch_size=2) == identity(batch_size=16)
    assert identity() != identity(quantization="4bit")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"1")
    before = identity(adapter=str(adapter))
    assert before != identity() and identity(adapter=str(adapter)) == before
    os.utime(adapter / "adapter_model.safetensors", ns=(1, 10**18))  # the adapter trained again
    assert identity(adapter=str(adapter)) != before


def _pairwise(scores: dict[str, tuple[str, str]]) -> str:
    """A pairwise critique of the t2i dimensions given, in order, with the values written as given."""
    names = {"text_faithfulness": "Text Faithfulness", "physical_quality": "Physical and Visual Quality",
             "text_rendering": "Text Rendering"}
    lines = ["# Detailed Judgement"]
    for number, (key, (a, b)) in enumerate(scores.items(), start=1):
        lines += [f"{number}. {names[key]}:", "## Justification: Evidence.", f"## Score A: {a}",
                  f"## Score B: {b}", "## Winner: Image A"]
    return "\n".join(lines + ["# Summary: Done."]) + "\n"


ANSWERS = {
    # label A; a value outside 1-4: strict has no preference, the reference reads 17 (4+17+2.5 > 2+3.5+2.5)
    "p0": _pairwise({"text_faithfulness": ("4", "2"), "physical_quality": ("17", "3.5"),
                     "text_rendering": ("N/A", "N/A")}),
    # label B; cut after the first dimension: strict partial, the reference fills 2.5 (2+5 < 3.5+5)
    "p1": _pairwise({"text_faithfulness": ("2", "3.5")}),
    "p2": "I cannot judge these images.",  # label A; the reference sees 2.5 everywhere: a tie, wrong
    "p3": _pairwise({"text_faithfulness": ("3", "3"), "physical_quality": ("3", "3"),
                     "text_rendering": ("N/A", "N/A")}),  # label tie: dropped by the reference
}


def test_reference_comparable_mode_scores_what_the_strict_one_leaves_out(tmp_path):
    labels = [Preference.A, Preference.B, Preference.A, Preference.TIE, Preference.B]
    data = [PreferencePair(f"p{i}", Task.T2I, f"request p{i}", RED, BLUE, label, source="mmrb")
            for i, label in enumerate(labels)]

    def script(conversation):
        pair_id = conversation.user_text.split("request ")[1].split()[0]
        if pair_id == "p4":
            raise ConnectionError("server down")  # no answer at all: left out by both readings
        return ANSWERS[pair_id]

    metrics = evaluate_critic(ScriptedCritic(script), data, tmp_path / "r.jsonl",
                              EvaluateConfig(both_orders=False, batch_size=1, progress=False))["by_source"]["mmrb"]
    assert metrics["failures"] == 4 and metrics["evaluated_with_ties"] == 1  # strict: only p3 counts
    assert metrics["reference_evaluated"] == 3 and metrics["reference_left_out"] == 1
    assert metrics["reference_accuracy"] == 2 / 3  # p0 and p1 right, p2 a predicted tie
    table = paper_table({"judge": {"by_source": {"mmrb": metrics}}}, {"mmrb": "mmrb2-t2i"}, "reference_accuracy")
    assert table.splitlines()[2] == "| judge | 66.7 | - | - | - | - |"


def test_editreward_visual_quality_is_image_faithfulness_plus_physical_quality(tmp_path):
    from tests.critique_texts import PAIRWISE_EDIT

    # PAIRWISE_EDIT: text faithfulness a tie; image faithfulness 4.0 vs 2.5 and physical quality 3.0 vs 3.5,
    # so visual quality (the sum) favours A although physical quality alone favours B.
    labels = {"text_faithfulness": Preference.A, "visual_quality": Preference.A, "physical_quality": Preference.B}
    pair = PreferencePair("e1", Task.EDIT, "make the sky purple", RED, BLUE, Preference.A, source_image=RED,
                          source="editreward", dimension_labels=labels)
    metrics = evaluate_critic(ScriptedCritic(lambda c: PAIRWISE_EDIT), [pair], tmp_path / "r.jsonl",
                              EvaluateConfig(both_orders=False, progress=False))["by_source"]["editreward"]
    assert metrics["dimension_agreement"] == {"text_faithfulness": 0.0, "visual_quality": 1.0,
                                              "physical_quality": 1.0}
    assert metrics["reference_dimension_accuracy"] == metrics["dimension_agreement"]


def test_paper_table_has_the_projects_own_data_as_a_column(tmp_path):
    """The studio's own pairs (format storage) get a column beside the paper's, headed by the set's name;
    a critic not evaluated on a set shows "-" there."""
    data = [PreferencePair(f"{source}-{p.pair_id}", p.task, p.request, p.image_a, p.image_b, p.label, source=source)
            for source in ("mmrb", "studio") for p in pairs()]
    perfect = evaluate_critic(ScriptedCritic(sees_red), data, tmp_path / "r.jsonl", EvaluateConfig(progress=False))
    always_a = evaluate_critic(ScriptedCritic(lambda c: pair_text(Task.T2I, Preference.A)),
                               [p for p in data if p.source == "mmrb"], tmp_path / "a.jsonl",
                               EvaluateConfig(progress=False))
    table = paper_table({"student": perfect, "base": always_a}, {"mmrb": "mmrb2-t2i", "studio": "storage"})
    header, _, student, base = table.splitlines()
    assert header == ("| critic | MMRB2-T2I | MMRB2-Edit | EditReward-Bench | GenAI-Bench-T2I | GenAI-Bench-Edit "
                      "| studio |")
    assert student == "| student | 100.0 | - | - | - | - | 100.0 |"
    assert base == "| base | 66.7 | - | - | - | - | - |"
