"""The written layout of a critique: section headings and how a critique is rendered as text.

The prompt's output-format block, `render_critique` (used for SFT targets and tests), the parser
and the decoding grammar all take their headings from here.
"""

from __future__ import annotations

from rr_core.critique import Critique, DimensionScore, PairwiseCritique, Preference
from rr_core.rubric import Task, dimensions

ANALYSIS = "User Request Analysis"
JUDGEMENT = "Detailed Judgement"
SUMMARY = "Summary"
REFINEMENT = "User Request Refinement"
COMMENTS = "Refinement Comments"
REFINED = "Refined Request"
JUSTIFICATION = "Justification"
SCORE = "Score"
SCORE_A = "Score A"
SCORE_B = "Score B"
WINNER = "Winner"
NA = "N/A"
# What the model writes on a Winner line; the tie wording is the checkpoints' own ("It's a tie").
WINNER_WORDS = {Preference.A: "Image A", Preference.B: "Image B", Preference.TIE: "It's a tie"}


def format_score(score: float | None, not_applicable: bool = False) -> str:
    if not_applicable:
        return NA
    if score is None:
        return ""
    return f"{score:.2f}".rstrip("0").rstrip(".") if score != int(score) else f"{score:.1f}"


def render_pointwise(
    task: Task,
    analysis: str,
    entries: list[tuple[str, str]],
    summary: str,
    comments: str,
    refined: str,
) -> str:
    """Lay out a pointwise critique; `entries` are (justification, score text) per dimension in order."""
    lines = [f"# {ANALYSIS}", analysis, f"# {JUDGEMENT}"]
    for number, (dim, (justification, score)) in enumerate(zip(dimensions(task), entries), start=1):
        lines += [f"{number}. {dim.heading}:", f"## {JUSTIFICATION}: {justification}", f"## {SCORE}: {score}"]
    lines += [f"# {SUMMARY}: {summary}", "", f"# {REFINEMENT}:", f"## {COMMENTS}: {comments}",
              f"## {REFINED}: {refined}"]
    return "\n".join(lines)


def render_pairwise(task: Task, analysis: str, entries: list[tuple[str, str, str, str]], summary: str) -> str:
    """Lay out a pairwise critique; `entries` are (justification, score A, score B, winner) per dimension.

    It opens with the request analysis, as the pointwise layout does, so the model reads the
    request before it compares (the reference's pairwise layout has the same section).
    """
    lines = [f"# {ANALYSIS}", analysis, f"# {JUDGEMENT}"]
    for number, (dim, (justification, a, b, winner)) in enumerate(zip(dimensions(task), entries), start=1):
        lines += [f"{number}. {dim.heading}:", f"## {JUSTIFICATION}: {justification}",
                  f"## {SCORE_A}: {a}", f"## {SCORE_B}: {b}", f"## {WINNER}: {winner}"]
    lines.append(f"# {SUMMARY}: {summary}")
    return "\n".join(lines)


def _placeholder(what: str) -> str:
    """A slot of the output skeleton shown to the model, in the checkpoints' bracket style."""
    return f"[ {what} ]"


def score_placeholder(na_allowed: bool) -> str:
    return _placeholder("float score or N/A" if na_allowed else "float score")


def output_format(task: Task, mode: str) -> str:
    """The skeleton shown to the model after "Output your evaluation in the following format:"."""
    if mode == "pointwise":
        entries = [(_placeholder("concrete visual evidence for this aspect's score"), score_placeholder(dim.na_allowed))
                   for dim in dimensions(task)]
        return render_pointwise(
            task,
            _placeholder("what the instruction asks for: subjects, attributes, relations, any text, style"),
            entries,
            _placeholder("the main strengths and weaknesses in one or two sentences"),
            _placeholder("each weakness, the instruction detail behind it, and the specific fix"),
            _placeholder("one new, enriched request, written like a standard user instruction"),
        )
    if mode == "pairwise":
        winner = _placeholder(", ".join(WINNER_WORDS[p] for p in (Preference.A, Preference.B)) + " or "
                              + WINNER_WORDS[Preference.TIE])
        entries = [(_placeholder("concrete visual evidence comparing the two images on this aspect"),
                    score_placeholder(dim.na_allowed), score_placeholder(dim.na_allowed), winner)
                   for dim in dimensions(task)]
        return render_pairwise(
            task,
            _placeholder("what the instruction asks for: subjects, attributes, relations, any text, style"),
            entries,
            _placeholder("which image is better overall, and why"),
        )
    raise ValueError(f"unknown mode {mode!r}: expected 'pointwise' or 'pairwise'")


def render_critique(critique: Critique) -> str:
    """The canonical text of a critique: the layout the checkpoints write and the parser reads."""
    entries = []
    for dim in dimensions(critique.task):
        entry = critique.scores.get(dim.key) or DimensionScore(key=dim.key)
        entries.append((entry.justification, format_score(entry.score, entry.not_applicable)))
    return render_pointwise(critique.task, critique.analysis, entries, critique.summary,
                            critique.refinement_comments, critique.refined_request)


def render_pairwise_critique(critique: PairwiseCritique) -> str:
    entries = []
    for dim in dimensions(critique.task):
        entry = critique.dims.get(dim.key)
        if entry is None:
            entries.append(("", "", "", ""))
            continue
        entries.append((
            entry.justification,
            format_score(entry.score_a, entry.a_not_applicable),
            format_score(entry.score_b, entry.b_not_applicable),
            WINNER_WORDS[entry.winner] if entry.winner else "",
        ))
    return render_pairwise(critique.task, critique.analysis, entries, critique.summary)
