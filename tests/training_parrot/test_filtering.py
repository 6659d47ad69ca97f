"""Consistency filtering: each check with positive and negative cases on real-format rationales."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from rr_core.critique import Preference
from rr_core.parser import parse_pairwise
from rr_core.rubric import Task
from tests.critique_texts import PAIRWISE_EDIT, PAIRWISE_T2I
from tests.scripted import ScriptedCritic
from tests.training_parrot.conftest import judge_reading, pair_text
from training.data import PreferencePair
from training.parrot.filtering import (
    FilterConfig,
    check_format,
    check_leakage,
    check_self_consistency,
    filter_rationales,
    repredict,
    swap_image_refs,
)
from training.parrot.records import read_jsonl

RULE = FilterConfig().rule


def test_format_accepts_real_rationales():
    assert check_format(PAIRWISE_T2I, Task.T2I, RULE)[0].passed
    assert check_format(PAIRWISE_EDIT, Task.EDIT, RULE)[0].passed


@pytest.mark.parametrize("text, reason", [
    (PAIRWISE_T2I.split("3. Text Rendering:")[0] + "# Summary: cut.", "Text Rendering: missing"),
    (PAIRWISE_T2I.replace("## Score A: 4.0", "## Score A: 5.5"), "out of range"),
    (PAIRWISE_T2I.replace("## Score B: 2.0", "## Score B: N/A"), "N/A is not allowed"),
    (PAIRWISE_T2I.replace("## Score B: 3.5", "## Score B: good"), "unreadable score"),
    ("I like image A.", "missing"),
])
def test_format_rejects_broken_rationales(text, reason):
    check, _ = check_format(text, Task.T2I, RULE)
    assert check.passed is False and reason in check.reason


def test_format_rejects_truncated_generation():
    check, _ = check_format(PAIRWISE_T2I, Task.T2I, RULE, finish_reason="length")
    assert check.passed is False and "token limit" in check.reason


def test_self_consistency():
    parsed = parse_pairwise(PAIRWISE_T2I, Task.T2I, RULE)  # sums 4.0+3.5+2.5 vs 2.0+3.5+2.5: A
    assert check_self_consistency(parsed, Preference.A).passed
    assert not check_self_consistency(parsed, Preference.B).passed
    assert not check_self_consistency(parsed, Preference.TIE).passed
    edit = parse_pairwise(PAIRWISE_EDIT, Task.EDIT, RULE)  # 13.0 vs 12.0
    assert check_self_consistency(edit, Preference.A).passed


def test_tie_within_tolerance():
    text = PAIRWISE_T2I.replace("## Score B: 2.0", "## Score B: 3.8")
    strict = parse_pairwise(text, Task.T2I, FilterConfig().rule)
    loose = parse_pairwise(text, Task.T2I, FilterConfig(tie_tolerance=0.25).rule)
    assert not check_self_consistency(strict, Preference.TIE).passed
    assert check_self_consistency(loose, Preference.TIE).passed


def test_leakage_removes_revealing_sentences():
    text = pair_text(Task.T2I, Preference.A, extra="As the human chose, this is the preferred image.",
                     summary_extra="This matches the ground truth label.")
    parsed = parse_pairwise(text, Task.T2I, RULE)
    check, cleaned, per_dim = check_leakage(parsed, FilterConfig())
    assert check.passed and "removed 2 sentence" in check.reason
    assert per_dim["text_faithfulness"] >= 1
    assert "human" not in cleaned.dims["text_faithfulness"].justification
    assert "count and colour are right" in cleaned.dims["text_faithfulness"].justification
    assert "ground truth" not in cleaned.summary and "Image A matches" in cleaned.summary


def test_leakage_clean_text_passes_and_reject_mode_rejects():
    clean = parse_pairwise(pair_text(Task.T2I, Preference.B), Task.T2I, RULE)
    check, cleaned, _ = check_leakage(clean, FilterConfig())
    assert check.passed and check.reason == "" and cleaned is clean
    leaky = parse_pairwise(pair_text(Task.T2I, Preference.B, extra="The annotators agree."), Task.T2I, RULE)
    assert check_leakage(leaky, FilterConfig(leak_action="reject"))[0].passed is False


def test_leakage_rejects_when_a_justification_is_all_leak():
    text = PAIRWISE_T2I.replace("Image A shows three red circles; Image B shows two.", "Image A is the preferred image.")
    check, _, _ = check_leakage(parse_pairwise(text, Task.T2I, RULE), FilterConfig())
    assert check.passed is False and "empty" in check.reason


def test_leakage_scrubs_the_request_analysis_too():
    """A label hint in the pairwise analysis is found and its sentence removed, the rest kept."""
    text = PAIRWISE_T2I.replace("drawn flat.", "drawn flat. The annotators preferred Image A.")
    parsed = parse_pairwise(text, Task.T2I, RULE)
    assert "annotators" in parsed.analysis
    check, cleaned, _ = check_leakage(parsed, FilterConfig())
    assert check.passed and "removed 1 sentence" in check.reason
    assert cleaned.analysis == "The user wants three red circles on a white background, drawn flat."
    assert check_leakage(parsed, FilterConfig(leak_action="reject"))[0].passed is False


def test_leakage_rejects_when_the_analysis_is_all_leak():
    text = PAIRWISE_T2I.replace("The user wants three red circles on a white background, drawn flat.",
                                "The human label says Image A.")
    check, _, _ = check_leakage(parse_pairwise(text, Task.T2I, RULE), FilterConfig())
    assert check.passed is False and "analysis" in check.reason


def test_swap_image_refs():
    assert swap_image_refs("Image A beats image B; IMAGE A wins.") == "Image B beats image A; IMAGE B wins."


def _pair(label: Preference, pair_id: str = "p1") -> PreferencePair:
    red, blue = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    return PreferencePair(pair_id, Task.T2I, "three red circles", red, blue, label, source="syn")


def reading_judge(**kwargs) -> ScriptedCritic:
    return ScriptedCritic(lambda c: pair_text(Task.T2I, judge_reading(c)), **kwargs)


def test_repredict_agrees_in_both_orders_with_scripted_judge():
    judge = reading_judge()
    parsed = parse_pairwise(pair_text(Task.T2I, Preference.A), Task.T2I, RULE)
    (check,) = repredict(judge, [(_pair(Preference.A), parsed)], FilterConfig())
    assert check.passed and len(judge.seen) == 2
    shown = [c.user_text.split("Another evaluator wrote", 1)[1] for c in judge.seen]
    assert "## Score" not in shown[0] and "Image A matches" in shown[0] and "Image B matches" in shown[1]


def test_repredict_rejects_rationale_that_argues_the_other_side():
    parsed = parse_pairwise(pair_text(Task.T2I, Preference.B), Task.T2I, RULE)
    (check,) = repredict(reading_judge(), [(_pair(Preference.A), parsed)], FilterConfig())
    assert check.passed is False and "predicted B" in check.reason


def test_repredict_catches_position_bias():
    always_a = ScriptedCritic(lambda c: pair_text(Task.T2I, Preference.A))
    parsed = parse_pairwise(pair_text(Task.T2I, Preference.A), Task.T2I, RULE)
    (both,) = repredict(always_a, [(_pair(Preference.A), parsed)], FilterConfig())
    (one,) = repredict(always_a, [(_pair(Preference.A), parsed)], FilterConfig(both_orders=False))
    assert both.passed is False and "B/A order" in both.reason and one.passed


def test_repredict_judge_garbage_is_a_judge_failure():
    parsed = parse_pairwise(pair_text(Task.T2I, Preference.A), Task.T2I, RULE)
    (check,) = repredict(ScriptedCritic(lambda c: "no idea"), [(_pair(Preference.A), parsed)], FilterConfig())
    assert check.passed is False and check.reason.startswith("judge failed")


def test_filter_phase_records_every_check_and_reports(tmp_path):
    pairs = [_pair(Preference.A, "good"), _pair(Preference.B, "inconsistent"), _pair(Preference.A, "leaky"),
             _pair(Preference.TIE, "broken"), _pair(Preference.B, "argues-a")]
    texts = {"good": pair_text(Task.T2I, Preference.A),
             "inconsistent": pair_text(Task.T2I, Preference.A),
             "leaky": pair_text(Task.T2I, Preference.A, summary_extra="The label says so."),
             "broken": "garbage",
             "argues-a": pair_text(Task.T2I, Preference.B).replace("Image B matches", "Image A matches")}
    rationales = tmp_path / "rationales.jsonl"
    rationales.write_text("".join(json.dumps({"pair_id": i, "text": t, "error": "", "finish_reason": "stop"}) + "\n"
                                  for i, t in texts.items()))
    judge = reading_judge()
    report = filter_rationales(rationales, pairs, tmp_path / "filter", FilterConfig(progress=False), judge)
    verdicts = {v["pair_id"]: v for v in read_jsonl(tmp_path / "filter" / "verdicts.jsonl")}
    assert {i for i, v in verdicts.items() if v["kept"]} == {"good", "leaky"}
    assert verdicts["inconsistent"]["checks"]["self_consistency"]["passed"] is False
    assert verdicts["broken"]["checks"]["format"]["passed"] is False
    assert verdicts["broken"]["checks"]["self_consistency"]["passed"] is None
    assert verdicts["argues-a"]["checks"]["repredict"]["passed"] is False
    assert "removed" in verdicts["leaky"]["checks"]["leakage"]["reason"]
    kept = {r["pair_id"]: r for r in read_jsonl(tmp_path / "filter" / "kept.jsonl")}
    assert "label" not in kept["leaky"]["text"].split("# Summary")[1]
    assert report["total"] == 5 and report["kept"] == 2 and report["format"]["pass_rate"] == 0.8
    assert report["by_source"]["syn"]["kept"] == 2
    assert report["by_dimension"]["t2i/text_faithfulness"]["parse_rate"] == 0.8
    # Resumable: a second run judges nothing again.
    seen = len(judge.seen)
    filter_rationales(rationales, pairs, tmp_path / "filter", FilterConfig(progress=False), judge)
    assert len(judge.seen) == seen
