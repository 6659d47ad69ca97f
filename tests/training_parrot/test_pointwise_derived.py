"""Pointwise training records derived from preference pairs: anchored, filtered like the pairwise
rationales, and mixed into the SFT data by a config value."""

from __future__ import annotations

import json
import re

import pytest

from rr_core.critique import Critique, DimensionScore, Preference
from rr_core.critique_format import render_critique
from rr_core.parser import parse_critique
from rr_core.rubric import Task, dimensions
from tests.scripted import ScriptedCritic
from training.config import from_mapping
from training.data import DataSource, read_pairs
from training.parrot.filtering import FilterConfig
from training.parrot.pipeline import PipelineConfig, run_filter, run_generate
from training.parrot.pointwise import (
    VERDICTS,
    anchored_pointwise_conversation,
    filter_pointwise,
    generate_pointwise,
    pointwise_kept,
    verdict_of,
)
from training.parrot.records import read_jsonl
from training.parrot.synthetic import write_synthetic_pairs


def pointwise_text(score: float, extra: str = "") -> str:
    scores = {d.key: (DimensionScore(d.key, None, True, "No text requested.") if d.na_allowed else
                      DimensionScore(d.key, score, justification=f"The circles are drawn cleanly. {extra}".strip()))
              for d in dimensions(Task.T2I)}
    return render_critique(Critique(task=Task.T2I, scores=scores, analysis="Asks for circles.", summary="Fine.",
                                    refinement_comments="Be precise.", refined_request="Exactly three red circles."))


def anchored_verdict(conversation) -> str:
    text = conversation.user_text
    return next(v for v, words in VERDICTS.items() if words in text)


def honest_teacher(conversation) -> str:
    """Argues the anchored verdict; mentions the comparison once (a leak the filter must remove)."""
    score = {"better": 3.75, "worse": 2.0, "tie": 3.0}[anchored_verdict(conversation)]
    return pointwise_text(score, "It was judged better than the other candidate.")


def count_teacher(conversation) -> str:
    """Says 'Right count.' for a better or tied image and 'Wrong count.' for a worse one."""
    verdict = anchored_verdict(conversation)
    return pointwise_text(2.0 if verdict == "worse" else 3.5, "Wrong count." if verdict == "worse" else "Right count.")


def reads_observations(conversation) -> str:
    """A judge that believes the side-by-side observations: the side called right wins."""
    from tests.training_parrot.conftest import pair_text

    observed = conversation.user_text.split("Another evaluator wrote", 1)[1].split("\n")
    line = next(x for x in observed if "Text Faithfulness" in x)
    said = dict(re.findall(r"Image ([AB]): [^.]*\. (Right|Wrong) count", line))
    a, b = said["A"] == "Right", said["B"] == "Right"
    return pair_text(Task.T2I, Preference.TIE if a == b else (Preference.A if a else Preference.B))


@pytest.fixture
def pairs(tmp_path):
    data = write_synthetic_pairs(tmp_path / "data", n_pairs=4, tie_every=4, seed=2)
    return read_pairs(DataSource("storage", str(data)))[0]


def test_the_anchor_names_the_side_verdict_and_no_label_word(pairs):
    pair = next(p for p in pairs if p.label is Preference.B)
    assert verdict_of(pair.label, "a") == "worse" and verdict_of(pair.label, "b") == "better"
    conversation = anchored_pointwise_conversation(pair, "b")
    assert conversation.mode == "pointwise" and len(conversation.images) == 1
    assert VERDICTS["better"] in conversation.user_text
    assert conversation.template_version.endswith("+parrot-pointwise-anchor@1")


def test_scores_must_respect_the_label_and_leaks_are_removed(tmp_path, pairs):
    out = tmp_path / "pointwise.jsonl"
    summary = generate_pointwise(ScriptedCritic(honest_teacher), pairs, out)
    assert summary == {"pending": 8, "written": 8, "failed": 0}
    # A contrarian record for one non-tie pair: its scores favour the other image.
    wrong = next(p for p in pairs if p.label is not Preference.TIE)
    loser = "b" if wrong.label is Preference.A else "a"
    with out.open("a") as handle:
        handle.write(json.dumps({"id": f"{wrong.pair_id}:{loser}", "pair_id": wrong.pair_id, "side": loser,
                                 "task": "t2i", "label": wrong.label.value, "source": "storage",
                                 "text": pointwise_text(4.0), "error": "", "finish_reason": "stop"}) + "\n")
    report = filter_pointwise(out, pairs, tmp_path / "filter", FilterConfig(repredict=False, progress=False))
    assert report["pairs"] == 4 and report["kept_pairs"] == 3 and report["kept_records"] == 6
    verdicts = {v["pair_id"]: v for v in read_jsonl(tmp_path / "filter" / "pointwise_verdicts.jsonl")}
    assert "label is" in verdicts[wrong.pair_id]["checks"]["self_consistency"]["reason"]
    kept = pointwise_kept(tmp_path / "filter")
    for record in kept:
        critique = parse_critique(record["text"], Task.T2I)
        assert "other candidate" not in record["text"] and critique.refined_request
    # Complete parses only: a critique without its refined request rejects its pair.
    cut = pointwise_text(3.0)
    cut = cut[: cut.index("## Refined Request")]
    with out.open("a") as handle:
        pair = kept[0]["pair_id"]
        handle.write(json.dumps({"id": f"{pair}:a", "pair_id": pair, "side": "a", "task": "t2i", "label": "A",
                                 "text": cut, "error": "", "finish_reason": "stop"}) + "\n")
    again = filter_pointwise(out, pairs, tmp_path / "filter", FilterConfig(repredict=False, progress=False))
    assert again["kept_pairs"] == 2


def test_the_pipeline_mixes_derived_pointwise_samples_by_ratio(tmp_path):
    from tests.training_parrot.conftest import anchored_label, pair_text

    data = write_synthetic_pairs(tmp_path / "data", n_pairs=4, tie_every=0, seed=5)

    def teacher(conversation):
        if conversation.mode == "pointwise":
            return honest_teacher(conversation)
        return pair_text(Task.T2I, anchored_label(conversation))

    values = {"work_dir": str(tmp_path / "run"), "data": [{"format": "storage", "path": str(data)}],
              "filter": {"repredict": False, "progress": False}, "generate": {"progress": False},
              "derived_pointwise": {"ratio": 0.5}}
    config = from_mapping(PipelineConfig, values)
    run_generate(config, teacher=ScriptedCritic(teacher))
    report = run_filter(config)
    assert report["kept"] == 4 and report["pointwise"]["kept_records"] == 8
    assert report["sft_samples"] == {"pairwise": 4, "pointwise_derived": 2, "pointwise": 0}
    samples = list(read_jsonl(tmp_path / "run" / "sft.jsonl"))
    derived = [s for s in samples if s["kind"] == "pointwise-derived"]
    assert len(derived) == 2 and all(len(s["images"]) == 1 for s in derived)
    prompt = derived[0]["messages"][-2]["content"]
    assert "judged" not in prompt and "better than" not in prompt  # no anchor in the student's input
    config.derived_pointwise.enabled = False
    assert run_filter(config)["sft_samples"]["pointwise_derived"] == 0
    with pytest.raises(ValueError, match="ratio must be >= 0"):
        from_mapping(PipelineConfig, {"derived_pointwise": {"ratio": -1}})


def test_the_judge_rereads_both_critiques_side_by_side_without_scores(tmp_path, pairs):
    out = tmp_path / "pointwise.jsonl"
    generate_pointwise(ScriptedCritic(count_teacher), pairs, out)
    judge = ScriptedCritic(reads_observations)
    config = FilterConfig(progress=False, both_orders=True)
    report = filter_pointwise(out, pairs, tmp_path / "filter", config, judge)
    assert report["repredict"] == {"evaluated": 4, "passed": 4} and report["kept_pairs"] == 4
    shown = judge.seen[0].user_text.split("Another evaluator wrote", 1)[1]
    assert "Image A:" in shown and "Image B:" in shown and "Score" not in shown
    assert len(judge.seen) == 8  # both orders
    # A judge that reads the other way rejects every non-tie pair.
    contrary = ScriptedCritic(lambda c: reads_observations(c).replace("Score A", "Score X").replace(
        "Score B", "Score A").replace("Score X", "Score B"))
    flipped = filter_pointwise(out, pairs, tmp_path / "filter2", config, contrary)
    ties = sum(p.label is Preference.TIE for p in pairs)
    assert flipped["kept_pairs"] == ties
