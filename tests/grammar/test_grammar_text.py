"""The critique grammar against text: it accepts the canonical layout and nothing the parser cannot read."""

import re
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rr_core import critique_format as fmt
from rr_core import grammar, rubric
from rr_core.critique import (
    Critique,
    DimensionScore,
    PairDimension,
    PairwiseCritique,
    ParseStatus,
    Preference,
)
from rr_core.grammar import MODES, SectionCaps, critique_grammar, max_critique_chars, max_tokens_for
from rr_core.parser import parse_critique, parse_pairwise, read_score
from rr_core.rubric import Task, dimensions
from tests import critique_texts as texts
from tests.grammar.matching import accepts, live_matcher

WIDE = SectionCaps(analysis=400, justification=400, summary=400, comments=400, refined=400)
CANONICAL = {
    "T2I_OK": (Task.T2I, "pointwise"),
    "EDIT_OK": (Task.EDIT, "pointwise"),
    "QUOTED_HEADING": (Task.T2I, "pointwise"),
    "PAIRWISE_T2I": (Task.T2I, "pairwise"),
    "PAIRWISE_EDIT": (Task.EDIT, "pairwise"),
}
MALFORMED = ["BOLD", "T2I_SCORE_FIRST", "NA_WITH_REASON", "SLASH_FOUR", "OVER_RANGE", "OUT_OF_ORDER",
             "TRUNCATED_LAST_DIMENSION", "TRUNCATED_REFINEMENT", "MULTILINE_REFINED", "MISSING_HASHES",
             "RENUMBERED", "GARBAGE"]


def parse(text, task, mode):
    return parse_critique(text, task) if mode == "pointwise" else parse_pairwise(text, task)


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_canonical_texts_are_accepted_only_under_their_own_task_and_mode(name):
    text = getattr(texts, name)
    for task in Task:
        for mode in MODES:
            assert accepts(critique_grammar(task, mode, WIDE), text) == ((task, mode) == CANONICAL[name])


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_texts_are_rejected_everywhere(name):
    text = getattr(texts, name)
    for task in Task:
        for mode in MODES:
            assert not accepts(critique_grammar(task, mode, WIDE), text)


@pytest.mark.parametrize("old,new", [
    ("## Score: 3.5", "## Score: 4.5"),
    ("## Score: 3.5", "## Score: 4.25"),
    ("## Score: 3.5", "## Score: 0.5"),
    ("## Score: 3.5", "## Score: 3.5 "),
    ("## Score: 3.5", "## Score: 3.125"),
    ("## Score: 3.5", "## Score: N/A"),  # text faithfulness has no N/A
    ("## Score: 3.0", "## Score: n/a"),
    ("## Score: 3.5", "## Score: **3.5**"),
    ("## Refined Request: A watercolor", "## Refined Request: **A watercolor"),
    ("## Refined Request: A watercolor", '## Refined Request: "A watercolor'),
    ("1. Text Faithfulness:", "1. **Text Faithfulness**:"),
    ("## Justification: The perspective", "## Justification: # The perspective"),
    ("## Justification: The perspective", "## Justification:  The perspective"),
    ("# Summary: A faithful", "# Summary:\nA faithful"),
])
def test_one_wrong_field_is_rejected(old, new):
    assert old in texts.T2I_OK
    assert not accepts(critique_grammar(Task.T2I, "pointwise", WIDE), texts.T2I_OK.replace(old, new, 1))


def test_missing_dimension_is_rejected():
    block = texts.T2I_OK.split("2. Physical and Visual Quality:")[1].split("3. Text Rendering:")[0]
    text = texts.T2I_OK.replace("2. Physical and Visual Quality:" + block, "").replace("3. Text", "2. Text")
    assert parse_critique(text, "t2i").status is ParseStatus.PARTIAL
    assert not accepts(critique_grammar(Task.T2I, "pointwise", WIDE), text)


@pytest.mark.parametrize("value", ["1", "1.0", "2.5", "3.25", "3.50", "4", "4.0", "4.00"])
def test_score_syntax_accepted(value):
    text = texts.T2I_OK.replace("## Score: 3.5", f"## Score: {value}")
    assert accepts(critique_grammar(Task.T2I, "pointwise", WIDE), text)
    assert parse_critique(text, "t2i").scores["text_faithfulness"].score == float(value)


def _candidate_scores() -> list[str]:
    """Every number 0.00-9.99 in the ways a model writes it, and values seen in the wild."""
    written = {f"{n / 100:.{places}f}" for n in range(0, 1000) for places in (0, 1, 2)}
    return sorted(written | {"17", "-3", "-1.0", "99.5", "4.0000001", "4.001", "10", "3,5", "N/A", "good"})


def test_the_grammar_writes_only_scores_the_parser_takes_as_valid():
    """The constrained decoder can never produce a score the parser would reject as out of range."""
    grammar = critique_grammar(Task.T2I, "pointwise", WIDE)
    rule = next(line for line in grammar.splitlines() if line.startswith("score ::="))
    score_only = f"root ::= score\n{rule}\n"
    accepted = [value for value in _candidate_scores() if accepts(score_only, value)]
    dim = dimensions(Task.T2I)[0]
    assert "4.2" not in accepted and "17" not in accepted and "0.5" not in accepted
    for value in _candidate_scores():
        reading = read_score(value, dim)
        assert (value in accepted) <= (reading.score is not None and not reading.invalid), value
    assert {"1", "1.0", "2.5", "3.25", "4", "4.0", "4.00"} <= set(accepted)


@pytest.mark.parametrize("winner", ["Image C", "image a", "A", "Tie (both fine)", ""])
def test_pairwise_winner_words_only(winner):
    text = texts.PAIRWISE_T2I.replace("## Winner: Image A", f"## Winner: {winner}")
    assert not accepts(critique_grammar(Task.T2I, "pairwise", WIDE), text)


def test_pairwise_grammar_requires_the_analysis_section():
    """Constrained pairwise critiques open with the request analysis, as pointwise ones do."""
    g = critique_grammar(Task.T2I, "pairwise")
    bare = "# Detailed Judgement" + texts.PAIRWISE_T2I.split("# Detailed Judgement", 1)[1]
    assert accepts(g, texts.PAIRWISE_T2I)
    assert not accepts(g, bare)
    assert not accepts(g, texts.PAIRWISE_T2I.replace("drawn flat.", "drawn flat"))


def test_pairwise_na_only_where_allowed():
    ok = texts.PAIRWISE_T2I
    bad = ok.replace("## Score B: 2.0", "## Score B: N/A")
    assert accepts(critique_grammar(Task.T2I, "pairwise", WIDE), ok)
    assert not accepts(critique_grammar(Task.T2I, "pairwise", WIDE), bad)


@pytest.mark.parametrize("task,mode", [(t, m) for t in Task for m in MODES])
def test_every_proper_prefix_is_unfinished(task, mode):
    """A critique cut before its last field's text is a live prefix, never a finished one."""
    name = next(n for n, tm in CANONICAL.items() if tm == (task, mode))
    text = getattr(texts, name).rstrip("\n")
    last = f"## {fmt.REFINED}: " if mode == "pointwise" else f"# {fmt.SUMMARY}: "
    matcher = live_matcher(critique_grammar(task, mode, WIDE))
    for char in text[: text.index(last) + len(last)]:
        assert not matcher.is_completed()
        assert matcher.accept_string(char)
    assert not matcher.is_completed()


@pytest.mark.parametrize("field", ["justification", "summary", "comments", "refined"])
def test_caps_bound_each_field(field):
    caps = SectionCaps(analysis=40, justification=40, summary=40, comments=40, refined=40)

    def text(length):
        values = {name: "x" for name in ("analysis", "justification", "summary", "comments", "refined")}
        values["analysis"] = "x."
        values[field] = "x" * (length - 1) + ("." if field == "analysis" else "x")
        entries = [(values["justification"], "3") for _ in dimensions(Task.EDIT)]
        return fmt.render_pointwise(Task.EDIT, values["analysis"], entries, values["summary"],
                                    values["comments"], values["refined"])

    assert accepts(critique_grammar(Task.EDIT, "pointwise", caps), text(40))
    assert not accepts(critique_grammar(Task.EDIT, "pointwise", caps), text(41))


def test_analysis_cap():
    """At most `analysis` characters; a line that does not start like the refinement heading gets 22 fewer."""
    g = critique_grammar(Task.T2I, "pointwise", SectionCaps(analysis=60, justification=400, summary=400,
                                                            comments=400, refined=400))
    line = texts.T2I_OK.splitlines()[1]
    heading_like = "User Request Refinemen"
    for analysis, ok in [("x" * 37 + ".", True), ("x" * 38 + ".", False),
                         (heading_like + "x" * 37 + ".", True), (heading_like + "x" * 38 + ".", False)]:
        assert accepts(g, texts.T2I_OK.replace(line, analysis)) == ok, analysis


@pytest.mark.parametrize("analysis,ok", [
    ("User Request Refinement is what the user wants.", False),
    ("user request refinement.", False),
    ("USER REQUEST REFINEMENT.", False),
    ("User Request Refinemen.", True),
    ("User request for a red fox.", True),
    ("Summary: a fox.", False),
    ("Refined Request: a fox.", False),
    ("Text Rendering", False),
    ("Detailed Judgement", False),
    ("Text Rendering.", True),
    ("- a fox in the snow.", False),
    ("> a fox in the snow.", False),
    (" a fox in the snow.", False),
    ("**User Request Refine**ment.", False),
    ("A fox in the snow", False),
    ("一只在雪中的狐狸。", True),
    ("\u017fummary\u212a.", True),
    ("\u3000a fox in the snow.", False),
])
def test_analysis_line_cannot_pose_as_a_heading(analysis, ok):
    text = texts.T2I_OK.replace(texts.T2I_OK.splitlines()[1], analysis, 1)
    assert accepts(critique_grammar(Task.T2I, "pointwise", WIDE), text) == ok
    if ok:
        assert parse_critique(text, "t2i").status is ParseStatus.OK


def test_case_fold_table_is_what_python_re_folds():
    """Every non-ASCII character re.IGNORECASE matches to an ASCII letter is in grammar.CASE_FOLDS."""
    letters = re.compile("[a-z]", re.IGNORECASE)
    found: dict[str, str] = {}
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if letters.fullmatch(char):
            letter = next(c for c in "abcdefghijklmnopqrstuvwxyz" if re.fullmatch(c, char, re.IGNORECASE))
            found[letter] = found.get(letter, "") + char
    assert found == grammar.CASE_FOLDS


# --- random critiques --------------------------------------------------------------------------

_FREE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="#\x85")
_WORDS = st.sampled_from(["Text Rendering", "Score:", "Summary:", "User Request Refinement", "N/A",
                          "Image A", "**", "__", "1.", "Refined Request:", "Winner:", "\u017f", "\u212a"])


def free_text(max_size):
    piece = st.one_of(st.text(_FREE, min_size=1, max_size=12), _WORDS)
    joined = st.lists(piece, min_size=1, max_size=8).map("".join)
    return joined.map(lambda s: s.strip()[:max_size]).filter(bool)


scores = st.one_of(st.just(1.0), st.just(4.0), st.floats(1.0, 4.0).map(lambda x: round(x, 2)))


@st.composite
def analyses(draw):
    """An analysis line the default caps allow (pointwise and pairwise share the rule)."""
    caps = SectionCaps()
    analysis = draw(free_text(caps.analysis - len(fmt.REFINEMENT))
                    .filter(lambda s: not re.search(r"[:*_>]", s) and s[0] not in "-"))
    analysis = analysis + draw(st.sampled_from(list(grammar.ANALYSIS_END)))
    if re.match(re.escape(fmt.REFINEMENT), analysis, re.IGNORECASE):
        # "The " moves the line off the heading's start, which leaves it the shorter cap.
        analysis = ("The " + analysis[:-1])[: caps.analysis - len(fmt.REFINEMENT)] + analysis[-1]
    return analysis


@st.composite
def critiques(draw, task):
    caps = SectionCaps()
    analysis = draw(analyses())
    critique = Critique(task=task, analysis=analysis, summary=draw(free_text(caps.summary)),
                        refinement_comments=draw(free_text(caps.comments)),
                        refined_request=draw(free_text(caps.refined)
                                             .filter(lambda s: s[0] not in '*_"\u201c\u201d')))
    for dim in dimensions(task):
        na = dim.na_allowed and draw(st.booleans())
        critique.scores[dim.key] = DimensionScore(key=dim.key, score=None if na else draw(scores),
                                                  not_applicable=na,
                                                  justification=draw(free_text(caps.justification)))
    return critique


@st.composite
def pair_critiques(draw, task):
    caps = SectionCaps()
    pair = PairwiseCritique(task=task, analysis=draw(analyses()), summary=draw(free_text(caps.summary)))
    for dim in dimensions(task):
        na_a, na_b = (dim.na_allowed and draw(st.booleans()) for _ in range(2))
        pair.dims[dim.key] = PairDimension(
            key=dim.key, score_a=None if na_a else draw(scores), score_b=None if na_b else draw(scores),
            a_not_applicable=na_a, b_not_applicable=na_b, winner=draw(st.sampled_from(list(Preference))),
            justification=draw(free_text(caps.justification)))
    return pair


@pytest.mark.parametrize("task", list(Task))
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rendered_critiques_are_accepted_and_parse(task, data):
    critique = data.draw(critiques(task))
    text = fmt.render_critique(critique)
    assert accepts(critique_grammar(task), text), text
    parsed = parse_critique(text, task)
    assert parsed.status is ParseStatus.OK, parsed.problems
    for key, entry in critique.scores.items():
        assert parsed.scores[key].not_applicable == entry.not_applicable
        assert parsed.scores[key].score == entry.score


@pytest.mark.parametrize("task", list(Task))
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rendered_pairwise_critiques_are_accepted_and_parse(task, data):
    pair = data.draw(pair_critiques(task))
    text = fmt.render_pairwise_critique(pair)
    assert accepts(critique_grammar(task, "pairwise"), text), text
    parsed = parse_pairwise(text, task)
    assert parsed.status is ParseStatus.OK, parsed.problems
    assert parsed.analysis == pair.analysis
    for key, entry in pair.dims.items():
        assert (parsed.dims[key].score_a, parsed.dims[key].score_b) == (entry.score_a, entry.score_b)
        assert parsed.dims[key].winner == entry.winner


_MARKS = st.sampled_from(list(":*_>-\"\u201c\u201d .!?\t\u3000") + ["**", "## ", "\n"])
_ADVERSARIAL = st.lists(st.one_of(_WORDS, _MARKS,
                                  st.text(st.characters(blacklist_categories=("Cs",)), max_size=4)),
                        min_size=1, max_size=6).map("".join)


FIELD_LINES = {"analysis": (1, ""), "justification": (4, "## Justification: "),
               "summary": (12, "# Summary: "), "refined": (16, "## Refined Request: ")}


@pytest.mark.parametrize("field", sorted(FIELD_LINES))
@given(value=_ADVERSARIAL, end=st.sampled_from(["", ".", ")"]))
@settings(max_examples=300, deadline=None)
def test_whatever_the_grammar_accepts_parses(field, value, end):
    """Soundness: any free text the grammar lets through, however heading-like, still parses ok."""
    lines = texts.T2I_OK.rstrip("\n").split("\n")
    number, prefix = FIELD_LINES[field]
    assert lines[number].startswith(prefix)
    lines[number] = prefix + value + end
    text = "\n".join(lines)
    accepted = accepts(critique_grammar(Task.T2I, "pointwise", WIDE), text)
    event(f"accepted: {accepted}")
    if accepted:
        parsed = parse_critique(text, "t2i")
        assert parsed.status is ParseStatus.OK, parsed.problems
        assert [parsed.scores[k].score for k in ("text_faithfulness", "physical_quality")] == [3.5, 3.0]


# --- one source of truth, bounds, the HTTP fields ------------------------------------------------

def test_a_dimension_added_to_the_rubric_is_in_the_grammar(monkeypatch):
    extra = rubric.Dimension(key="aesthetics", heading="Aesthetic Appeal", scope="How beautiful it is",
                             labels=("w", "x", "y", "z"),
                             levels=("a", "b", "c", "d"), na_allowed=True)
    monkeypatch.setitem(rubric.DIMENSIONS, Task.T2I, rubric.DIMENSIONS[Task.T2I] + (extra,))
    grammar._grammar.cache_clear()
    try:
        g = critique_grammar(Task.T2I, "pointwise", WIDE)
        text = texts.T2I_OK.replace("# Summary:", "4. Aesthetic Appeal:\n## Justification: Pleasant.\n"
                                    "## Score: N/A\n# Summary:")
        assert '4. Aesthetic Appeal:' in g
        assert accepts(g, text) and not accepts(g, texts.T2I_OK)
    finally:
        grammar._grammar.cache_clear()


@pytest.mark.parametrize("task,mode", [(t, m) for t in Task for m in MODES])
def test_default_caps_fit_1024_tokens_at_one_char_per_token(task, mode):
    assert max_critique_chars(task, mode) <= 1000


def test_max_tokens_for_bounds_the_longest_critique_in_bytes():
    """Fill every field to its cap with 4-byte characters: the text is accepted and fits the bound."""
    caps = SectionCaps()
    wide = "\U0001F98A"
    text = fmt.render_pointwise(
        Task.EDIT, fmt.REFINEMENT[:-1] + wide * (caps.analysis - len(fmt.REFINEMENT)) + ".",
        [(wide * caps.justification, "3.25" if not d.na_allowed else "4.00") for d in dimensions(Task.EDIT)],
        wide * caps.summary, wide * caps.comments, wide * caps.refined) + "\n"
    assert accepts(critique_grammar(Task.EDIT), text)
    assert len(text) == max_critique_chars(Task.EDIT)
    assert len(text.encode("utf-8")) + 1 <= max_tokens_for(Task.EDIT)


def test_caps_are_checked():
    with pytest.raises(ValueError, match="justification"):
        SectionCaps(justification=0)
    with pytest.raises(ValueError, match="analysis"):
        SectionCaps(analysis=10)
    with pytest.raises(ValueError, match="mode"):
        critique_grammar("t2i", "listwise")
    with pytest.raises(ValueError, match="task"):
        critique_grammar("video")


@pytest.mark.parametrize("task,mode", [(t, m) for t in Task for m in MODES])
def test_vllm_body_round_trips_through_the_server_side_reader(task, mode):
    body = {"model": "critic", "messages": [], **grammar.vllm_extra_body(task, mode)}
    assert body["structured_outputs"] == {"grammar": critique_grammar(task, mode)}
    assert grammar.grammar_from_request(body) == critique_grammar(task, mode)
    legacy = grammar.vllm_extra_body(task, mode, legacy=True)
    assert grammar.grammar_from_request(legacy) == critique_grammar(task, mode)


def test_request_without_a_grammar_and_bad_requests():
    assert grammar.grammar_from_request({"model": "critic", "max_tokens": 10}) is None
    assert grammar.grammar_from_request({"structured_outputs": {}}) is None
    for body, message in [
        ({"structured_outputs": {"grammar": ""}}, "non-empty"),
        ({"structured_outputs": {"grammar": 3}}, "non-empty"),
        ({"structured_outputs": "root ::= x"}, "JSON object"),
        ({"structured_outputs": {"json": {}}}, "only 'grammar'"),
        ({"structured_outputs": {"grammar": "root ::= \"a\""}, "guided_grammar": "root ::= \"a\""}, "once"),
        ([], "JSON object"),
    ]:
        with pytest.raises(grammar.InvalidRequest, match=message):
            grammar.grammar_from_request(body)


def test_unbounded_fields():
    caps = SectionCaps(analysis=None, justification=None, summary=None, comments=None, refined=None)
    text = texts.T2I_OK.replace("## Justification: The perspective", "## Justification: " + "very " * 400)
    assert accepts(critique_grammar(Task.T2I, "pointwise", caps), text)
    assert not accepts(critique_grammar(Task.T2I, "pointwise", caps), texts.BOLD)
    with pytest.raises(ValueError, match="unbounded"):
        max_tokens_for(Task.T2I, "pointwise", caps)
