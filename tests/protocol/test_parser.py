import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rr_core import critique_format as fmt
from rr_core.critique import Critique, DimensionScore, ParseStatus, Preference, invalid_score_text
from rr_core.parser import PairRule, parse_critique, parse_pairwise, render_critique
from rr_core.rubric import Task, dimension_keys, dimensions
from tests import critique_texts as texts


def scores(critique):
    return {k: ("N/A" if v.not_applicable else v.score) for k, v in critique.scores.items()}


def test_t2i_reads_every_dimension():
    c = parse_critique(texts.T2I_OK, "t2i")
    assert c.status is ParseStatus.OK, c.problems
    assert scores(c) == {"text_faithfulness": 3.5, "physical_quality": 3.0, "text_rendering": 2.5}
    assert c.scores["physical_quality"].justification.startswith("The perspective of the tower")
    assert c.analysis.startswith("The user wants a watercolor")
    assert c.summary.startswith("A faithful watercolor")
    assert c.refinement_comments.startswith("Ask explicitly")
    assert c.refined_request.startswith("A watercolor painting of a tall, straight lighthouse")
    assert c.problems == []


def test_edit_reads_every_dimension():
    c = parse_critique(texts.EDIT_OK, Task.EDIT)
    assert c.status is ParseStatus.OK, c.problems
    assert scores(c) == {"text_faithfulness": 3.0, "image_faithfulness": 4.0,
                         "physical_quality": 2.5, "text_rendering": "N/A"}


@pytest.mark.parametrize("task", list(Task))
def test_each_dimension_is_read_under_its_exact_heading(task):
    """Give each dimension a distinct score and check each lands on the right key.

    If a heading in the rubric were misspelt (upstream looked for "Physical Quality"), the text the
    checkpoints write would not be read for that dimension and this test fails.
    """
    protocol_headings = {"text_faithfulness": "Text Faithfulness", "image_faithfulness": "Image Faithfulness",
                         "physical_quality": "Physical and Visual Quality", "text_rendering": "Text Rendering"}
    parts = ["# Detailed Judgement"]
    expected = {}
    for number, key in enumerate(dimension_keys(task), start=1):
        expected[key] = 1.0 + number * 0.5
        parts += [f"{number}. {protocol_headings[key]}:", "## Justification: x", f"## Score: {expected[key]}"]
    parts += ["# Summary: s", "# User Request Refinement:", "## Refinement Comments: c", "## Refined Request: r"]
    c = parse_critique("\n".join(parts), task)
    assert scores(c) == expected
    assert c.status is ParseStatus.OK


def test_misspelt_heading_loses_that_dimension_only():
    text = texts.T2I_OK.replace("Physical and Visual Quality:", "Physical Quality:")
    c = parse_critique(text, "t2i")
    assert c.status is ParseStatus.PARTIAL
    assert c.scores["physical_quality"].score is None
    assert "Physical and Visual Quality: missing" in c.problems
    assert c.scores["text_faithfulness"].score == 3.5


def test_score_before_justification():
    c = parse_critique(texts.T2I_SCORE_FIRST, "t2i")
    assert c.status is ParseStatus.OK
    assert scores(c) == {"text_faithfulness": 4.0, "physical_quality": 3.25, "text_rendering": "N/A"}
    assert c.scores["physical_quality"].justification == "Slight blur on the paws."


def test_bold_markup_everywhere():
    c = parse_critique(texts.BOLD, "t2i")
    assert c.status is ParseStatus.OK, c.problems
    assert scores(c) == {"text_faithfulness": 3.5, "physical_quality": 2.0, "text_rendering": "N/A"}
    assert c.scores["physical_quality"].justification == "One dog has five legs."
    assert c.refined_request.startswith("Two dogs playing in a park")


def test_na_with_reason_and_slash_four():
    assert parse_critique(texts.NA_WITH_REASON, "t2i").scores["text_rendering"].not_applicable
    c = parse_critique(texts.SLASH_FOUR, "t2i")
    assert c.scores["text_faithfulness"].score == 3.5
    assert c.scores["text_faithfulness"].raw_score == "3.5/4"


@pytest.mark.parametrize("written", ["17", "-3", "99.5", "4.2", "0.5", "4.0000001", "0.9999", "5/4",
                                     "3/5", "7/10", "3,5", "good", "**excellent**", "three"])
def test_a_value_that_is_not_a_1_to_4_score_is_invalid_never_clamped(written):
    """Scores outside 1-4 or not numbers are kept as written and never become a score."""
    c = parse_critique(texts.T2I_OK.replace("## Score: 3.5", f"## Score: {written}"), "t2i")
    entry = c.scores["text_faithfulness"]
    assert entry.score is None and not entry.not_applicable
    assert entry.invalid and entry.raw_score == written.strip("*")  # bold markup is not part of the value
    assert not entry.valid and c.score("text_faithfulness") is None
    assert c.status is ParseStatus.PARTIAL
    assert any(p.startswith("Text Faithfulness:") and "not a 1-4 score" in p for p in c.problems), c.problems
    assert c.scores["physical_quality"].score == 3.0 and not c.scores["physical_quality"].invalid


@pytest.mark.parametrize("written, value", [("3.5/4", 3.5), ("3.5 / 4", 3.5), ("4/4", 4.0), ("1", 1.0),
                                            ("4.00", 4.0), ("**3.5**", 3.5), ("3.5 (minor flaws)", 3.5),
                                            ("`2.75`", 2.75), ("+3", 3.0)])
def test_scores_on_the_scale_stay_valid(written, value):
    c = parse_critique(texts.T2I_OK.replace("## Score: 3.5", f"## Score: {written}"), "t2i")
    entry = c.scores["text_faithfulness"]
    assert entry.score == value and not entry.invalid
    assert c.status is ParseStatus.OK, c.problems


def test_out_of_range_scores_are_invalid_and_noted():
    c = parse_critique(texts.OVER_RANGE, "t2i")  # 4.2 and 0.5
    assert c.scores["text_faithfulness"].score is None and c.scores["text_faithfulness"].raw_score == "4.2"
    assert c.scores["physical_quality"].score is None and c.scores["physical_quality"].raw_score == "0.5"
    assert c.status is ParseStatus.PARTIAL
    assert not any("clamped" in p for p in c.problems)
    assert any("4.2" in p and "out of range" in p for p in c.problems)


def test_nothing_valid_is_failed_even_with_a_refined_request():
    text = (texts.T2I_OK.replace("## Score: 3.5", "## Score: 17").replace("## Score: 3.0", "## Score: -3")
            .replace("## Score: 2.5", "## Score: 99.5"))
    c = parse_critique(text, "t2i")
    assert c.refined_request
    assert c.status is ParseStatus.FAILED
    assert [c.scores[k].raw_score for k in dimension_keys(Task.T2I)] == ["17", "-3", "99.5"]


def test_an_empty_score_is_missing_not_invalid():
    c = parse_critique(texts.T2I_OK.replace("## Score: 3.5", "## Score:"), "t2i")
    entry = c.scores["text_faithfulness"]
    assert entry.score is None and not entry.invalid
    assert c.status is ParseStatus.PARTIAL


def test_an_invalid_dimension_survives_serialisation():
    """Storage keeps a critique as its to_dict JSON: the raw value and the verdict must come back."""
    import json

    c = parse_critique(texts.T2I_OK.replace("## Score: 3.5", "## Score: 17"), "t2i")
    back = Critique.from_dict(json.loads(json.dumps(c.to_dict())))
    entry = back.scores["text_faithfulness"]
    assert entry.raw_score == "17" and entry.invalid and entry.score is None
    assert back.status is ParseStatus.PARTIAL


def test_a_stored_critique_from_before_the_rule_is_read_again_on_load():
    """Rows written while the parser clamped hold score 4.0 for "17" and status ok: loading undoes that."""
    c = parse_critique(texts.T2I_OK, "t2i")
    data = c.to_dict()
    data["scores"]["text_faithfulness"] = {"key": "text_faithfulness", "score": 4.0, "not_applicable": False,
                                           "justification": "j", "raw_score": "17"}
    data["reward"] = 0.667
    back = Critique.from_dict(data)
    assert back.scores["text_faithfulness"].score is None and back.scores["text_faithfulness"].invalid
    assert back.status is ParseStatus.PARTIAL and back.reward is None


def test_the_view_helper_shows_the_value_as_written():
    c = parse_critique(texts.T2I_OK.replace("## Score: 3.5", "## Score: 17"), "t2i")
    shown = invalid_score_text(c.scores["text_faithfulness"])
    assert "17" in shown and "not a score" in shown
    assert invalid_score_text(c.scores["physical_quality"]) is None


def test_pairwise_invalid_score_gives_no_preference():
    text = texts.PAIRWISE_T2I.replace("## Score A: 4.0", "## Score A: 17", 1)
    p = parse_pairwise(text, "t2i")
    entry = p.dims["text_faithfulness"]
    assert entry.score_a is None and entry.a_invalid and entry.raw_score_a == "17"
    assert p.status is ParseStatus.PARTIAL
    assert p.preference is None and p.total_a is None
    assert any("17" in problem and "image A" in problem for problem in p.problems)


def test_na_not_allowed_where_the_rubric_forbids_it():
    text = texts.T2I_OK.replace("## Score: 3.0", "## Score: N/A")
    c = parse_critique(text, "t2i")
    assert c.status is ParseStatus.PARTIAL
    assert c.scores["physical_quality"].score is None and not c.scores["physical_quality"].not_applicable
    assert any("N/A is not allowed" in p for p in c.problems)


def test_dimensions_out_of_order():
    c = parse_critique(texts.OUT_OF_ORDER, "t2i")
    assert c.status is ParseStatus.OK
    assert scores(c) == {"text_faithfulness": 1.5, "physical_quality": 3.75, "text_rendering": "N/A"}


def test_renumbered_and_reformatted_headings():
    c = parse_critique(texts.RENUMBERED, "t2i")
    assert c.status is ParseStatus.OK, c.problems
    assert scores(c) == {"text_faithfulness": 3.5, "physical_quality": 3.0, "text_rendering": 2.5}


def test_heading_quoted_inside_a_justification_is_not_a_section():
    c = parse_critique(texts.QUOTED_HEADING, "t2i")
    assert c.status is ParseStatus.OK
    assert scores(c) == {"text_faithfulness": 3.0, "physical_quality": 3.5, "text_rendering": 1.5}
    assert "Text Rendering:" in c.scores["text_faithfulness"].justification


def test_truncated_last_dimension_is_partial():
    c = parse_critique(texts.TRUNCATED_LAST_DIMENSION, "t2i")
    assert c.status is ParseStatus.PARTIAL
    assert c.scores["text_faithfulness"].score == 3.5
    assert c.scores["text_rendering"].score is None
    assert "Text Rendering: no score line" in c.problems
    assert c.refined_request == ""


def test_truncated_refinement_is_partial():
    c = parse_critique(texts.TRUNCATED_REFINEMENT, "t2i")
    assert c.status is ParseStatus.PARTIAL
    assert scores(c)["text_rendering"] == 2.5
    assert "Refined Request: missing" in c.problems


def test_refined_request_on_following_lines():
    c = parse_critique(texts.MULTILINE_REFINED, "t2i")
    assert c.refined_request == ('A watercolor painting of a tall, straight lighthouse on a high cliff at sunset, '
                                 'with the word "HOPE" in clean block letters on the tower.')


def test_headings_without_hashes():
    c = parse_critique(texts.MISSING_HASHES, "t2i")
    assert c.status is ParseStatus.OK, c.problems
    assert scores(c) == {"text_faithfulness": 4.0, "physical_quality": 3.5, "text_rendering": "N/A"}
    assert c.refined_request == "A blue bird perched on a branch, morning light."
    assert c.summary == "Very good."


def test_garbage_fails_and_keeps_raw_text():
    c = parse_critique(texts.GARBAGE, "t2i")
    assert c.status is ParseStatus.FAILED
    assert c.raw_text == texts.GARBAGE
    assert c.reward is None
    assert all(s.score is None for s in c.scores.values())


def test_pairwise_t2i():
    p = parse_pairwise(texts.PAIRWISE_T2I, "t2i")
    assert p.status is ParseStatus.OK
    assert p.dims["text_faithfulness"].score_a == 4.0 and p.dims["text_faithfulness"].score_b == 2.0
    assert p.dims["text_faithfulness"].winner is Preference.A
    assert p.dims["physical_quality"].winner is Preference.TIE
    assert p.total_a == pytest.approx(4.0 + 3.5 + 2.5) and p.total_b == pytest.approx(2.0 + 3.5 + 2.5)
    assert p.preference is Preference.A
    assert p.analysis == "The user wants three red circles on a white background, drawn flat."


def test_pairwise_analysis_is_kept_apart_from_the_judgement_and_optional():
    """The analysis ends where the judgement starts; a critique written without one still parses ok."""
    p = parse_pairwise(texts.PAIRWISE_EDIT, Task.EDIT)
    assert p.analysis == "The user wants the sky turned purple and everything else left as it was."
    assert "sky turned purple" not in p.dims["text_faithfulness"].justification
    without = texts.PAIRWISE_EDIT.split("# Detailed Judgement", 1)[1]
    bare = parse_pairwise("# Detailed Judgement" + without, Task.EDIT)
    assert bare.status is ParseStatus.OK and bare.analysis == ""
    assert bare.preference is p.preference


def test_pairwise_analysis_round_trips_through_the_renderer():
    p = parse_pairwise(texts.PAIRWISE_T2I, "t2i")
    again = parse_pairwise(fmt.render_pairwise_critique(p), "t2i")
    assert again.analysis == p.analysis and again.status is ParseStatus.OK
    assert again.to_dict()["analysis"] == p.analysis


def test_pairwise_edit_and_tie_tolerance():
    p = parse_pairwise(texts.PAIRWISE_EDIT, Task.EDIT)
    assert p.status is ParseStatus.OK
    assert p.total_a == pytest.approx(3.5 + 4.0 + 3.0 + 2.5)
    assert p.total_b == pytest.approx(3.5 + 2.5 + 3.5 + 2.5)
    assert p.preference is Preference.A
    assert parse_pairwise(texts.PAIRWISE_EDIT, Task.EDIT, PairRule(tie_tolerance=1.0)).preference is Preference.TIE


def test_pairwise_na_value_is_configurable():
    text = texts.PAIRWISE_T2I.replace("## Score A: N/A", "## Score A: 1.0")
    assert parse_pairwise(text, "t2i", PairRule(na_value=2.5)).total_b == pytest.approx(8.0)
    assert parse_pairwise(text, "t2i", PairRule(na_value=4.0)).total_b == pytest.approx(9.5)


def test_pairwise_preference_comes_from_scores_not_winner_lines():
    text = texts.PAIRWISE_T2I.replace("## Winner: Image A", "## Winner: Image B")
    assert parse_pairwise(text, "t2i").preference is Preference.A


def test_pairwise_missing_dimension_is_partial():
    text = texts.PAIRWISE_T2I.split("3. Text Rendering:")[0]
    p = parse_pairwise(text, "t2i")
    assert p.status is ParseStatus.PARTIAL
    assert p.preference is Preference.A


@given(st.text(max_size=3000))
@settings(max_examples=300, deadline=None)
def test_parser_never_raises(text):
    for task in Task:
        c = parse_critique(text, task)
        assert c.status in set(ParseStatus)
        for entry in c.scores.values():
            assert entry.score is None or 1.0 <= entry.score <= 4.0
        parse_pairwise(text, task)


_safe_text = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd", "Zs"), whitelist_characters=".,;'()-"),
    min_size=1, max_size=80,
).map(lambda s: " ".join(s.split())).filter(lambda s: bool(s) and ":" not in s)
_score = st.integers(min_value=100, max_value=400).map(lambda n: n / 100)


@st.composite
def critiques(draw):
    task = draw(st.sampled_from(list(Task)))
    entries = {}
    for dim in dimensions(task):
        na = dim.na_allowed and draw(st.booleans())
        entries[dim.key] = DimensionScore(key=dim.key, score=None if na else draw(_score), not_applicable=na,
                                          justification=draw(_safe_text))
    return Critique(task=task, scores=entries, analysis=draw(_safe_text), summary=draw(_safe_text),
                    refinement_comments=draw(_safe_text), refined_request=draw(_safe_text))


@given(critiques())
@settings(max_examples=200, deadline=None)
def test_render_parse_round_trip(critique):
    parsed = parse_critique(render_critique(critique), critique.task)
    assert parsed.status is ParseStatus.OK, parsed.problems
    assert scores(parsed) == scores(critique)
    for key, entry in critique.scores.items():
        assert parsed.scores[key].justification == entry.justification
    assert (parsed.analysis, parsed.summary, parsed.refinement_comments, parsed.refined_request) == (
        critique.analysis, critique.summary, critique.refinement_comments, critique.refined_request)


def test_output_format_shown_to_the_model_uses_the_parsed_headings():
    skeleton = fmt.output_format(Task.EDIT, "pointwise")
    for dim in dimensions(Task.EDIT):
        assert f". {dim.heading}:" in skeleton
    assert f"## {fmt.REFINED}:" in skeleton


@pytest.mark.parametrize("task", list(Task))
@pytest.mark.parametrize("trailing", [" (how well the image follows the request)", " [ scope of the aspect ]",
                                      " see below"])
def test_heading_with_text_after_it_on_the_same_line_is_read(task, trailing):
    """A model that copies the rubric's scope onto the heading line must not lose that dimension."""
    parts = ["# Detailed Judgement"]
    expected = {}
    for number, dim in enumerate(dimensions(task), start=1):
        expected[dim.key] = 1.0 + number * 0.5
        parts += [f"{number}. {dim.heading}:{trailing}", f"## Justification: j{number}",
                  f"## Score: {expected[dim.key]}"]
    parts += ["# Summary: s", "# User Request Refinement:", "## Refinement Comments: c", "## Refined Request: r"]
    c = parse_critique("\n".join(parts), task)
    assert scores(c) == expected, c.problems
    assert c.status is ParseStatus.OK
    assert [c.scores[d.key].justification for d in dimensions(task)] == [
        f"j{n}" for n in range(1, len(dimensions(task)) + 1)]


def test_heading_with_fields_on_the_same_line_is_read():
    text = texts.T2I_OK.replace("1. Text Faithfulness:\n## Justification:", "1. Text Faithfulness: ## Justification:")
    c = parse_critique(text, "t2i")
    assert c.status is ParseStatus.OK, c.problems
    assert c.scores["text_faithfulness"].justification.startswith("The lighthouse, the cliff")


@pytest.mark.parametrize("words", ["It's a tie", "It’s a tie", "it is a tie", "A tie", "Tie", "tie (both fine)",
                                   "Tied", "**It's a tie**"])
def test_pairwise_tie_wordings(words):
    text = texts.PAIRWISE_T2I.replace("## Winner: Image A", f"## Winner: {words}")
    assert parse_pairwise(text, "t2i").dims["text_faithfulness"].winner is Preference.TIE


@pytest.mark.parametrize("words,winner", [("Image A", Preference.A), ("B", Preference.B),
                                          ("Image B is better", Preference.B), ("its colours", None)])
def test_pairwise_winner_wordings(words, winner):
    text = texts.PAIRWISE_T2I.replace("## Winner: Image A", f"## Winner: {words}")
    assert parse_pairwise(text, "t2i").dims["text_faithfulness"].winner is winner
