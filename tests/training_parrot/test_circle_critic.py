"""The rule-based circle counter (teacher and judge of the offline smoke run) and the pipeline settings
that make that run need no preparation: the synthetic set drawn on first use, `base_model: tiny`."""

from __future__ import annotations

import pytest
from PIL import Image

from rr_core.critics.base import PairRequest
from rr_core.critique import ParseStatus, Preference
from rr_core.parser import parse_pairwise
from rr_core.prompts import build_pairwise, build_pointwise
from rr_core.rubric import Task
from training.config import from_mapping
from training.data import DataSource, read_pairs
from training.parrot.circle_critic import CircleCritic, circle_rationale, count_circles, parse_circle_request
from training.parrot.pipeline import PipelineConfig, run_filter, run_generate
from training.parrot.synthetic import draw_circles, write_synthetic_pairs
from training.parrot.templates import anchored_conversation


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_counts_touching_circles_of_each_colour(count):
    counts = count_circles(draw_circles(count, "green", seed=count))
    assert counts == {"red": 0, "blue": 0, "green": count, "yellow": 0}


def test_reads_the_request_and_refuses_other_ones():
    assert parse_circle_request("User Request: four yellow circles\n\nImage A:") == (4, "yellow")
    assert parse_circle_request("one red circle") == (1, "red")
    with pytest.raises(ValueError, match="only judges synthetic requests"):
        parse_circle_request("a lighthouse at dusk")


def test_judges_from_the_pixels_not_the_announced_label():
    right, wrong = draw_circles(3, "red"), draw_circles(2, "red")
    for label in Preference:
        conversation = anchored_conversation(Task.T2I, "three red circles", wrong, right, None, label)
        parsed = parse_pairwise(circle_rationale(conversation), Task.T2I)
        assert parsed.status is ParseStatus.OK and parsed.preference is Preference.B
    swapped = build_pairwise(Task.T2I, "three red circles", right, wrong)
    assert parse_pairwise(circle_rationale(swapped), Task.T2I).preference is Preference.A
    tie = build_pairwise(Task.T2I, "three red circles", right, draw_circles(3, "red", seed=7))
    assert parse_pairwise(circle_rationale(tie), Task.T2I).preference is Preference.TIE


def test_agrees_with_every_label_of_the_synthetic_set(tmp_path):
    """Through the critic interface, as evaluation uses it."""
    pairs, _ = read_pairs(DataSource("storage", str(write_synthetic_pairs(tmp_path, n_pairs=24, seed=3))))
    critiques = CircleCritic().compare_many([PairRequest(p.task, p.request, *p.open()[:2]) for p in pairs])
    assert [c.status for c in critiques] == [ParseStatus.OK] * 24
    assert [c.preference for c in critiques] == [p.label for p in pairs]


def test_writes_a_complete_pointwise_critique_for_one_image():
    from rr_core.parser import parse_critique

    right = parse_critique(circle_rationale(build_pointwise(Task.T2I, "three red circles", draw_circles(3, "red"))),
                           Task.T2I)
    wrong = parse_critique(circle_rationale(build_pointwise(Task.T2I, "three red circles", draw_circles(2, "red"))),
                           Task.T2I)
    assert right.status is ParseStatus.OK and right.refined_request
    assert right.score("text_faithfulness") == 4.0 and wrong.score("text_faithfulness") == 2.0


def test_refuses_what_it_cannot_judge():
    blank = Image.new("RGB", (96, 96), "white")
    with pytest.raises(ValueError, match="text-to-image"):
        circle_rationale(build_pairwise(Task.EDIT, "add two blue circles", blank, blank, source_image=blank))


def test_synthetic_set_is_drawn_on_first_use_and_judged_by_the_circle_counter(tmp_path):
    config = from_mapping(PipelineConfig, {
        "work_dir": str(tmp_path / "run"),
        "synthetic": {"out_dir": str(tmp_path / "syn"), "n_pairs": 6, "circle_critic": True},
        "generate": {"progress": False}, "filter": {"progress": False, "both_orders": True},
    })
    assert not (tmp_path / "syn").exists()
    assert run_generate(config)["written"] == 6
    assert (tmp_path / "syn" / "pairs.jsonl").is_file()
    report = run_filter(config)
    assert report["kept"] == 6 and report["sft_samples"]["pairwise"] == 6


def test_circle_counter_with_a_named_teacher_is_refused(tmp_path):
    with pytest.raises(ValueError, match="circle_critic"):
        from_mapping(PipelineConfig, {"synthetic": {"circle_critic": True},
                                      "teacher": {"backend": "openai", "settings": {}}})


def test_tiny_base_model_is_the_offline_tiny_critic():
    from rr_core.critics.tiny import ensure_tiny_critic

    config = from_mapping(PipelineConfig, {"distill": {"base_model": "tiny"}})
    assert config.distill_config().base_model == str(ensure_tiny_critic())
