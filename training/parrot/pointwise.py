"""Pointwise training records derived from preference pairs: the critique the app, the loop and RL use.

The app asks the critic for a pointwise critique of one image (scores and a refined request), but
public preference data only says which of two images is better. A student distilled on pairwise
rationales alone never practises the pointwise critique. So, as the reference mixes pointwise and
pairwise samples, each pair also yields two pointwise critiques, one per image:

1. anchored generation: the teacher gets the ordinary pointwise prompt for one image plus a note of
   the known preference (this image was judged better than, worse than, or as good as the other
   candidate for the same request) and writes the full critique, refined request included;
2. filtering, like the pairwise rationales:
   - format: both critiques parse completely (every dimension, the refined request), scores in 1-4,
     not cut off at the token limit;
   - self-consistency: the preference implied by the two critiques' summed scores (N/A counted as
     `na_value`) equals the label;
   - leakage: sentences that reveal the anchor ("the other candidate", "raters", ...) are removed
     (or the pair rejected), and a justification emptied that way rejects it;
   - re-prediction: the judge sees both images and the two critiques' justifications side by side,
     without scores or label, and must predict the label (in both orders when configured);
3. both critiques of a pair that passes become SFT samples: the serving pointwise prompt of that
   image with the cleaned critique as the answer; no label or anchor in the input.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rr_core.critics.base import Critic
from rr_core.critique import Critique, DimensionScore, PairDimension, PairwiseCritique, ParseStatus, Preference
from rr_core.critique_format import render_critique
from rr_core.parser import parse_critique, preference_from_totals
from rr_core.prompts import Conversation, build_pointwise
from rr_core.rubric import Task, dimensions
from training.data import PreferencePair
from training.parrot.filtering import CHECKS, Check, FilterConfig, find_leaks, repredict
from training.parrot.records import JsonlWriter, latest_by_id, read_jsonl, write_json

logger = logging.getLogger(__name__)

SIDES = ("a", "b")
ANCHOR_VERSION = "parrot-pointwise-anchor@1"
ANCHOR = ("For your reference only, never to be mentioned in your answer: people who compared this image "
          "with another candidate made for the same request judged this image {verdict}. Write the critique "
          "in the required format so that your scores agree with that judgement, and support every score "
          "with what you can see in this image.")
VERDICTS = {"better": "better than the other one", "worse": "worse than the other one",
            "tie": "as good as the other one"}
# Phrases that give the anchor away in a pointwise critique, on top of FilterConfig.leak_patterns.
POINTWISE_LEAK_PATTERNS = [r"\bother (candidate|image|one|edit)s?\b", r"\b(raters?|people who compared)\b",
                           r"\bjudged (better|worse|as good)\b", r"\b(compared|comparison) (with|to) (another|the other)\b"]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class PointwiseConfig:
    """Pointwise records derived from the preference pairs.

    enabled: generate, filter and mix them (phases 1-2); false leaves the SFT data pairwise only.
    ratio: pointwise samples per pairwise sample in the SFT mix (kept ones chosen at random, seeded);
        None keeps every kept pointwise record (the reference mixes whole pointwise sets in).
    """

    enabled: bool = True
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.ratio is not None and self.ratio < 0:
            raise ValueError("derived_pointwise.ratio must be >= 0 (or null for all)")


def verdict_of(label: Preference, side: str) -> str:
    """better / worse / tie for the image on `side` of a pair with `label`."""
    if label is Preference.TIE:
        return "tie"
    return "better" if (label is Preference.A) == (side == "a") else "worse"


def _image(pair: PreferencePair, side: str) -> tuple[Any, Any]:
    image_a, image_b, source = pair.open()
    return (image_a if side == "a" else image_b), (source if pair.task is Task.EDIT else None)


def anchored_pointwise_conversation(pair: PreferencePair, side: str) -> Conversation:
    """Phase 1: the serving pointwise prompt of one image of the pair plus the known verdict."""
    image, source = _image(pair, side)
    conversation = build_pointwise(pair.task, pair.request, image, source)
    anchor = ANCHOR.replace("{verdict}", VERDICTS[verdict_of(pair.label, side)])
    return replace(conversation, parts=[*conversation.parts, "\n\n" + anchor],
                   template_version=f"{conversation.template_version}+{ANCHOR_VERSION}")


def record_id(pair_id: str, side: str) -> str:
    return f"{pair_id}:{side}"


def generate_pointwise(teacher: Critic, pairs: list[PreferencePair], out_path: str | Path,
                       batch_size: int = 8) -> dict[str, int]:
    """Two anchored pointwise critiques per pair, appended to `out_path`; ids done without error skipped."""
    done = {i for i, r in latest_by_id(out_path, key="id").items() if not r.get("error")}
    jobs = [(p, side) for p in pairs for side in SIDES if record_id(p.pair_id, side) not in done]
    summary = {"pending": len(jobs), "written": 0, "failed": 0}
    with JsonlWriter(out_path) as writer:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            conversations = [anchored_pointwise_conversation(p, side) for p, side in batch]
            try:
                generations = teacher.complete(conversations)
                errors = [g.error for g in generations]
            except Exception as exc:  # noqa: BLE001 - recorded per record and retried on the next run
                logger.warning("teacher batch failed: %s", exc)
                generations, errors = [None] * len(batch), [f"{type(exc).__name__}: {exc}"] * len(batch)
            for (pair, side), generation, error in zip(batch, generations, errors):
                writer.write({"id": record_id(pair.pair_id, side), "pair_id": pair.pair_id, "side": side,
                              "task": pair.task.value, "label": pair.label.value, "source": pair.source,
                              "text": generation.text if generation else "", "error": error or "",
                              "finish_reason": generation.finish_reason if generation else None,
                              "teacher": teacher.model_id})
                summary["written"] += 1
                summary["failed"] += bool(error)
    return summary


# --- filtering ---------------------------------------------------------------------------------


def _totals(critique: Critique, na_value: float) -> float:
    total = 0.0
    for dim in dimensions(critique.task):
        entry = critique.scores[dim.key]
        total += na_value if entry.not_applicable else float(entry.score)
    return total


def check_pointwise_format(record: dict[str, Any] | None, task: Task) -> tuple[Check, Critique | None]:
    if record is None or record.get("error") or not record.get("text"):
        return Check(False, f"no critique: {(record or {}).get('error') or 'missing or empty'}"), None
    if record.get("finish_reason") == "length":
        return Check(False, "cut off at the token limit"), None
    critique = parse_critique(record["text"], task)
    if critique.status is not ParseStatus.OK or critique.invalid_keys():
        return Check(False, "; ".join(critique.problems) or f"parse {critique.status.value}"), None
    return Check(True), critique


def _clean(text: str, patterns: list[re.Pattern[str]]) -> tuple[str, int]:
    sentences = _SENTENCE.split(text.strip()) if text.strip() else []
    kept = [s for s in sentences if not find_leaks(s, patterns)]
    return " ".join(kept), len(sentences) - len(kept)


def check_pointwise_leakage(critique: Critique, config: FilterConfig,
                            patterns: list[re.Pattern[str]]) -> tuple[Check, Critique]:
    """Remove sentences that give the anchor away (or reject); an emptied justification rejects."""
    fields = [critique.analysis, critique.summary, critique.refinement_comments,
              *(e.justification for e in critique.scores.values())]
    leaks = sorted({leak for text in fields for leak in find_leaks(text, patterns)})
    if not leaks:
        return Check(True), critique
    if config.leak_action == "reject":
        return Check(False, f"anchor-revealing phrases: {leaks}"), critique
    scores, emptied = {}, []
    for key, entry in critique.scores.items():
        text, _ = _clean(entry.justification, patterns)
        if entry.justification.strip() and not text:
            emptied.append(key)
        scores[key] = replace(entry, justification=text)
    cleaned = replace(critique, scores=scores, analysis=_clean(critique.analysis, patterns)[0],
                      summary=_clean(critique.summary, patterns)[0],
                      refinement_comments=_clean(critique.refinement_comments, patterns)[0])
    if emptied:
        return Check(False, f"justification empty after removing leaks: {emptied}"), cleaned
    return Check(True, f"removed sentences with {leaks}"), cleaned


def side_by_side(task: Task, a: Critique, b: Critique) -> PairwiseCritique:
    """The two critiques as one pairwise rationale (justifications only matter: the judge never sees scores)."""
    dims = {}
    for dim in dimensions(task):
        ea, eb = a.scores.get(dim.key) or DimensionScore(dim.key), b.scores.get(dim.key) or DimensionScore(dim.key)
        dims[dim.key] = PairDimension(dim.key, ea.score, eb.score, ea.not_applicable, eb.not_applicable,
                                      justification=f"Image A: {ea.justification} Image B: {eb.justification}")
    return PairwiseCritique(task=task, dims=dims, summary=f"Image A: {a.summary} Image B: {b.summary}")


def filter_pointwise(records_path: str | Path, pairs: list[PreferencePair], out_dir: str | Path,
                     config: FilterConfig, judge: Critic | None = None) -> dict[str, Any]:
    """The four checks per pair of pointwise critiques; writes pointwise_verdicts.jsonl,
    pointwise_kept.jsonl and pointwise_report.json under `out_dir`; returns the report."""
    if config.repredict and judge is None:
        raise ValueError("the re-prediction check needs a judge critic (or set filter.repredict: false)")
    out_dir = Path(out_dir)
    records = latest_by_id(records_path, key="id")
    patterns = [*config.compiled, *(re.compile(p, re.IGNORECASE) for p in POINTWISE_LEAK_PATTERNS)]
    generated = [p for p in pairs if any(record_id(p.pair_id, s) in records for s in SIDES)]
    # 1. Cheap checks per pair: both critiques parse, their scores respect the label, no leaks.
    rows = []
    for pair in generated:
        checks = {name: Check() for name in CHECKS}
        parsed = {}
        for side in SIDES:
            check, critique = check_pointwise_format(records.get(record_id(pair.pair_id, side)), pair.task)
            if not check.passed:
                checks["format"] = Check(False, f"{side.upper()}: {check.reason}")
                break
            parsed[side] = critique
        else:
            checks["format"] = Check(True)
            totals = {s: _totals(parsed[s], config.na_value) for s in SIDES}
            implied = preference_from_totals(totals["a"], totals["b"], config.rule)
            checks["self_consistency"] = Check(implied == pair.label, "" if implied == pair.label else
                                               f"scores imply {implied.value} (A {totals['a']} vs B {totals['b']}), "
                                               f"label is {pair.label.value}")
            leak_checks = {}
            for side in SIDES:
                leak_checks[side], parsed[side] = check_pointwise_leakage(parsed[side], config, patterns)
            failed = [f"{s.upper()}: {c.reason}" for s, c in leak_checks.items() if not c.passed]
            checks["leakage"] = Check(not failed, "; ".join(failed) or "; ".join(
                c.reason for c in leak_checks.values() if c.reason))
        rows.append((pair, checks, parsed))
    # 2. Re-prediction on what passed, the two critiques shown side by side without scores.
    survivors = [row for row in rows if all(row[1][c].passed for c in CHECKS[:3])]
    if config.repredict and survivors:
        items = [(pair, side_by_side(pair.task, parsed["a"], parsed["b"])) for pair, _, parsed in survivors]
        for row, check in zip(survivors, repredict(judge, items, config)):
            row[1]["repredict"] = check
    # 3. Verdicts, kept records and the report.
    required = CHECKS if config.repredict else CHECKS[:3]
    verdicts, kept = [], []
    for pair, checks, parsed in rows:
        ok = all(checks[c].passed for c in required)
        verdicts.append({"pair_id": pair.pair_id, "source": pair.source, "task": pair.task.value,
                         "label": pair.label.value, "kept": ok, "checks": {k: v.to_dict() for k, v in checks.items()}})
        if ok:
            kept += [{"id": record_id(pair.pair_id, s), "pair_id": pair.pair_id, "side": s, "task": pair.task.value,
                      "label": pair.label.value, "source": pair.source, "text": render_critique(parsed[s])}
                     for s in SIDES]
    for name, items in (("pointwise_verdicts.jsonl", verdicts), ("pointwise_kept.jsonl", kept)):
        tmp = out_dir / (name + ".tmp")
        tmp.unlink(missing_ok=True)
        with JsonlWriter(tmp) as writer:
            for item in items:
                writer.write(item)
        tmp.replace(out_dir / name)
    report = {"pairs": len(rows), "kept_pairs": sum(v["kept"] for v in verdicts), "kept_records": len(kept)}
    for name in required:
        ran = [v["checks"][name]["passed"] for v in verdicts if v["checks"][name]["passed"] is not None]
        report[name] = {"evaluated": len(ran), "passed": sum(ran)}
    write_json(out_dir / "pointwise_report.json", report)
    logger.info("pointwise filter: kept %d of %d pairs", report["kept_pairs"], report["pairs"])
    return report


def pointwise_kept(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / "pointwise_kept.jsonl"
    return list(read_jsonl(path)) if path.is_file() else []


def derived_sample(pair: PreferencePair, side: str, critique_text: str) -> dict[str, Any]:
    """One sharegpt record: the serving pointwise prompt of one image, the cleaned critique as the answer."""
    image, source = _image(pair, side)
    record = build_pointwise(pair.task, pair.request, image, source).to_sharegpt()
    record["messages"].append({"role": "assistant", "content": critique_text})
    return record
