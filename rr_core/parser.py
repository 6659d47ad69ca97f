"""The one parser: critique text -> Critique / PairwiseCritique. It never raises on model output.

The model's text is read by line-anchored headings taken from the rubric, so a heading quoted
inside a justification is not mistaken for a section, dimensions may come in any order or
numbering, and bold markup is ignored. Whatever cannot be read is recorded in `problems` and the
status says how much was read: a failed parse is its own status, never a low score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rr_core import critique_format as fmt
from rr_core.critique import (
    Critique,
    DimensionScore,
    PairDimension,
    PairwiseCritique,
    ParseStatus,
    Preference,
    in_range,
    status_of,
)
from rr_core.rubric import SCORE_MAX, SCORE_MIN, Dimension, Task, dimension, dimensions

_BOLD = re.compile(r"\*\*|__")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_NA = re.compile(r"^\(?\s*(n\s*/\s*a|na|not applicable|none)\b", re.IGNORECASE)
_PREFIX = r"^[ \t>]*(?:#{1,6}[ \t]*)?(?:[-*][ \t]+)?"


def _heading_line(name: str, numbered: bool = False) -> re.Pattern[str]:
    """A dimension heading line: "2. Physical and Visual Quality:", "### Text Rendering".

    With `numbered`, the heading may carry its number, and a numbered heading with a colon may have
    text after it on the same line ("1. Text Faithfulness: (how well ...)", a scope the model copied
    from the prompt, or the first field): the dimension's block starts right after the colon
    (`_body_start`). An unnumbered line with text after the name stays text, so a justification line
    that happens to start with a dimension's name is not taken for a heading.
    """
    number = r"(?P<num>\d+[.)][ \t]*)?" if numbered else ""
    words = r"[ \t]+".join(re.escape(w) for w in name.split())
    trailing = r"|(?(num)(?(colon).*$|(?!))|(?!))" if numbered else ""
    return re.compile(_PREFIX + number + words + r"[ \t]*(?P<colon>:)?(?:[ \t]*$" + trailing + ")",
                      re.IGNORECASE | re.MULTILINE)


def _body_start(match: re.Match[str]) -> int:
    """Where a heading's block starts: after its colon when text follows it on the line, else after the line."""
    if match.group("colon") and match.group(0)[match.end("colon") - match.start():].strip():
        return match.end("colon")
    return match.end()


def _field_line(name: str) -> re.Pattern[str]:
    """A field heading with its value on the same line: "## Score: 3.5", "Refined Request:" ..."""
    words = r"[ \t]+".join(re.escape(w) for w in name.split())
    return re.compile(_PREFIX + words + r"[ \t]*:[ \t]*(?P<value>.*)$", re.IGNORECASE | re.MULTILINE)


_ANY_FIELD = re.compile(_PREFIX + r"(?:#{1,6}[ \t]*)?[A-Z][A-Za-z /]{1,40}:[ \t]*.*$", re.MULTILINE)
_SECTION = re.compile(r"^[ \t]*#{1,6}[ \t]*\S.*$", re.MULTILINE)
_SUMMARY = _field_line(fmt.SUMMARY)
_ANALYSIS = _heading_line(fmt.ANALYSIS)
_JUDGEMENT = _heading_line(fmt.JUDGEMENT)
_REFINEMENT = re.compile(_PREFIX + re.escape(fmt.REFINEMENT) + r"[ \t]*:?.*$", re.IGNORECASE | re.MULTILINE)
_COMMENTS = _field_line(fmt.COMMENTS)
_REFINED = _field_line(fmt.REFINED)
_JUSTIFICATION = _field_line(fmt.JUSTIFICATION)
_SCORE = re.compile(_PREFIX + r"Score[ \t]*:[ \t]*(?P<value>.*)$", re.IGNORECASE | re.MULTILINE)
_SCORE_A = _field_line(fmt.SCORE_A)
_SCORE_B = _field_line(fmt.SCORE_B)
_WINNER_FIELD = _field_line(fmt.WINNER)


@dataclass(frozen=True)
class ScoreReading:
    """What one written score says: a score, N/A, or nothing.

    `invalid` says why a written value is not a score (it is then never turned into one);
    `problem` is the line recorded on the critique.
    """

    score: float | None
    not_applicable: bool
    problem: str = ""
    invalid: str = ""


_SCALE = re.compile(r"[ \t]*/[ \t]*(?P<scale>\d+(?:\.\d+)?)")
_DECIMAL_COMMA = re.compile(r",\d")


def _invalid(dim: Dimension, reason: str) -> ScoreReading:
    return ScoreReading(None, False, f"{dim.heading}: {reason}; not a 1-4 score, kept as written", reason)


def read_score(raw: str, dim: Dimension) -> ScoreReading:
    """Read "3.5", "**3.5**", "3.5/4", "N/A (no text requested)".

    A value outside 1-4 ("4.2", "17", "-3"), on another scale ("3/5"), with a decimal comma ("3,5"),
    not a number, or N/A where the rubric forbids it is invalid: never clamped, never a score
    (upstream clamps; a wrong value must not become a plausible one). The bounds are exact: the text
    is decimal and compared as written, so "4.0000001" is above 4. An empty value is missing.
    """
    text = _BOLD.sub("", raw).strip().strip("`'\"")
    if not text:
        return ScoreReading(None, False, f"{dim.heading}: empty score")
    if _NA.match(text):
        if dim.na_allowed:
            return ScoreReading(None, True)
        return _invalid(dim, "N/A is not allowed for this dimension")
    match = _NUMBER.search(text)
    if match is None or match.start() > 3 or _DECIMAL_COMMA.match(text, match.end()):
        return _invalid(dim, f"unreadable score {text[:40]!r}")
    scale = _SCALE.match(text, match.end())
    if scale and float(scale.group("scale")) != SCORE_MAX:
        return _invalid(dim, f"score {text[:40]!r} is on a 1-{scale.group('scale')} scale, not 1-4")
    value = float(match.group())
    if not in_range(value):
        return _invalid(dim, f"score {match.group()} out of range {SCORE_MIN:g}-{SCORE_MAX:g}")
    return ScoreReading(value, False)


def _blocks(text: str, task: Task, end: int) -> tuple[dict[str, str], list[str]]:
    """Split the judgement part of `text` into one block of text per dimension heading found."""
    starts: list[tuple[int, int, str]] = []
    problems = []
    for dim in dimensions(task):
        matches = [m for m in _heading_line(dim.heading, numbered=True).finditer(text) if m.start() < end]
        if not matches:
            continue
        if len(matches) > 1:
            problems.append(f"{dim.heading}: heading appears {len(matches)} times; the first is used")
        starts.append((matches[0].start(), _body_start(matches[0]), dim.key))
    starts.sort()
    blocks = {}
    for index, (_, body_start, key) in enumerate(starts):
        body_end = starts[index + 1][0] if index + 1 < len(starts) else end
        blocks[key] = text[body_start:body_end]
    return blocks, problems


def _field_text(block: str, pattern: re.Pattern[str]) -> str | None:
    """The value of a field: its line's remainder plus following lines up to the next field or section."""
    match = pattern.search(block)
    if match is None:
        return None
    following = block[match.end():]
    stop = _ANY_FIELD.search(following)
    rest = following[: stop.start()] if stop else following
    return " ".join(part.strip() for part in (match.group("value") + rest).splitlines() if part.strip())


def _section_end(text: str) -> int:
    """Where the per-dimension judgement ends: the summary or refinement heading, or the end."""
    ends = [m.start() for m in (_SUMMARY.search(text), _REFINEMENT.search(text)) if m]
    return min(ends) if ends else len(text)


def _score_value(block: str, pattern: re.Pattern[str]) -> str | None:
    match = pattern.search(block)
    if match is None:
        return None
    value = match.group("value").strip()
    if not value:
        # The value on the line after its heading.
        following = block[match.end():].lstrip("\n").split("\n", 1)[0].strip()
        value = following if not _ANY_FIELD.match(following) else ""
    return value


def _clean(text: str | None) -> str:
    return (text or "").strip().strip('"').strip("“”").strip()


def _analysis_text(body: str, task: Task, end: int) -> str:
    """The "User Request Analysis" section: from its heading to the judgement (or first dimension)."""
    analysis = _ANALYSIS.search(body)
    if analysis is None:
        return ""
    stops = [m.start() for m in [_JUDGEMENT.search(body, analysis.end())] if m]
    stops += [m.start() for d in dimensions(task)
              for m in [_heading_line(d.heading, numbered=True).search(body, analysis.end())] if m]
    return body[analysis.end():min(stops, default=end)].strip()


def parse_critique(text: str, task: Task | str) -> Critique:
    """Read a pointwise critique; status ok only when every dimension and the refined request were read."""
    task = Task.parse(task)
    raw = text if isinstance(text, str) else ""
    body = _BOLD.sub("", raw)
    critique = Critique(task=task, raw_text=raw)
    end = _section_end(body)
    blocks, critique.problems = _blocks(body, task, end)

    critique.analysis = _analysis_text(body, task, end)

    for dim in dimensions(task):
        entry = DimensionScore(key=dim.key)
        block = blocks.get(dim.key)
        if block is None:
            critique.problems.append(f"{dim.heading}: missing")
            critique.scores[dim.key] = entry
            continue
        entry.justification = _clean(_field_text(block, _JUSTIFICATION))
        value = _score_value(block, _SCORE)
        if value is None:
            critique.problems.append(f"{dim.heading}: no score line")
        else:
            entry.raw_score = value
            reading = read_score(value, dim)
            entry.score, entry.not_applicable = reading.score, reading.not_applicable
            entry.invalid = reading.invalid
            if reading.problem:
                critique.problems.append(reading.problem)
        critique.scores[dim.key] = entry

    tail = body[end:]
    critique.summary = _clean(_field_text(tail, _SUMMARY))
    critique.refinement_comments = _clean(_field_text(tail, _COMMENTS))
    refined = _REFINED.search(tail)
    if refined:
        rest = tail[refined.end():]
        stop = _SECTION.search(rest)
        lines = (refined.group("value") + "\n" + (rest[: stop.start()] if stop else rest)).splitlines()
        critique.refined_request = _clean(" ".join(line.strip() for line in lines if line.strip()))
    if not critique.refined_request:
        critique.problems.append(f"{fmt.REFINED}: missing")

    critique.status = status_of(critique.scores, task, critique.refined_request)
    return critique


def recheck_scores(critique: Critique) -> Critique:
    """`critique` with every written score read again under `read_score`'s rules.

    For critiques stored before out-of-range values became invalid (they were clamped then): a
    dimension whose value is not a 1-4 score loses its score, the status is worked out again and the
    stored reward is dropped. A critique with nothing to change is returned as it is.
    """
    scores = dict(critique.scores)
    problems = list(critique.problems)
    for key, entry in critique.scores.items():
        if entry.invalid or entry.not_applicable:
            continue
        try:
            dim = dimension(critique.task, key)
        except (KeyError, ValueError):
            continue
        if entry.raw_score:
            reason = read_score(entry.raw_score, dim).invalid
        elif entry.score is not None and not in_range(entry.score):
            reason = f"score {entry.score:g} out of range {SCORE_MIN:g}-{SCORE_MAX:g}"
        else:
            reason = ""
        if reason:
            scores[key] = replace(entry, score=None, invalid=reason)
            problems.append(_invalid(dim, reason).problem)
    if scores == critique.scores:
        return critique
    return replace(critique, scores=scores, problems=problems, reward=None,
                   status=status_of(scores, critique.task, critique.refined_request))


_WINNER = re.compile(r"^\W*(?:image\s*)?(?P<side>[ab])\b", re.IGNORECASE)
# "It's a tie" (the checkpoints' wording), "It’s a tie", "it is a tie", "A tie", "Tie", "Tied", "Equal" ...
_TIE = re.compile(r"^\W*(?:it\s*(?:['’]\s*s|\s+is)\s+)?(?:a\s+)?(tie|tied|equal|both|same|neither|draw)\b",
                  re.IGNORECASE)


def _read_winner(value: str | None) -> Preference | None:
    """The Winner line's first words: "Image A", "B", "It's a tie", "Tie (both ...)"."""
    if not value:
        return None
    if _TIE.match(value):
        return Preference.TIE
    match = _WINNER.match(value)
    if match is None:
        return None
    return Preference.A if match.group("side").lower() == "a" else Preference.B


@dataclass(frozen=True)
class PairRule:
    """How a pairwise critique's scores become a preference.

    `na_value` stands in for N/A in the sums (upstream: 2.5, the middle of the scale); `tie_tolerance`
    is the largest |sum A - sum B| still called a tie.
    """

    na_value: float = 2.5
    tie_tolerance: float = 0.0


def preference_from_totals(total_a: float, total_b: float, rule: PairRule = PairRule()) -> Preference:
    if abs(total_a - total_b) <= rule.tie_tolerance + 1e-9:
        return Preference.TIE
    return Preference.A if total_a > total_b else Preference.B


def parse_pairwise(text: str, task: Task | str, rule: PairRule = PairRule()) -> PairwiseCritique:
    """Read a pairwise critique; the preference comes from the summed scores, never from the Winner lines.

    An invalid score on any dimension leaves the preference and totals None (see `read_score`).
    """
    task = Task.parse(task)
    raw = text if isinstance(text, str) else ""
    body = _BOLD.sub("", raw)
    result = PairwiseCritique(task=task, raw_text=raw)
    end = _section_end(body)
    blocks, result.problems = _blocks(body, task, end)
    result.analysis = _analysis_text(body, task, end)
    total_a = total_b = 0.0
    complete = 0
    invalid = False
    for dim in dimensions(task):
        entry = PairDimension(key=dim.key)
        result.dims[dim.key] = entry
        block = blocks.get(dim.key)
        if block is None:
            result.problems.append(f"{dim.heading}: missing")
            continue
        entry.justification = _clean(_field_text(block, _JUSTIFICATION))
        readings, written = [], []
        for label, pattern in (("A", _SCORE_A), ("B", _SCORE_B)):
            value = _score_value(block, pattern)
            written.append(value or "")
            if value is None:
                result.problems.append(f"{dim.heading}: no score {label}")
                readings.append(ScoreReading(None, False))
                continue
            reading = read_score(value, dim)
            if reading.problem:
                result.problems.append(f"{reading.problem} (image {label})")
            readings.append(reading)
        a, b = readings
        entry.score_a, entry.a_not_applicable, entry.a_invalid, entry.raw_score_a = (
            a.score, a.not_applicable, a.invalid, written[0])
        entry.score_b, entry.b_not_applicable, entry.b_invalid, entry.raw_score_b = (
            b.score, b.not_applicable, b.invalid, written[1])
        invalid = invalid or any(r.invalid for r in readings)
        entry.winner = _read_winner(_score_value(block, _WINNER_FIELD))
        values = [rule.na_value if r.not_applicable else r.score for r in readings]
        if None not in values:
            total_a += values[0]
            total_b += values[1]
            complete += 1
    result.summary = _clean(_field_text(body[end:], _SUMMARY))
    if complete and not invalid:
        result.total_a, result.total_b = total_a, total_b
        result.preference = preference_from_totals(total_a, total_b, rule)
    if complete == len(dimensions(task)):
        result.status = ParseStatus.OK
    else:
        result.status = ParseStatus.PARTIAL if complete else ParseStatus.FAILED
    return result


# Rendering lives with the layout; re-exported so callers find parse and render side by side.
from rr_core.critique_format import render_critique, render_pairwise_critique  # noqa: E402

__all__ = ["parse_critique", "parse_pairwise", "PairRule", "preference_from_totals", "read_score",
           "render_critique", "render_pairwise_critique"]
