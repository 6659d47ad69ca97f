"""Phase 2, consistency filtering: four checks, each a separate recorded verdict per rationale.

1. format: every dimension parsed with Score A and Score B, in 1-4, N/A only where the rubric allows.
2. self_consistency: the preference implied by the rationale's own summed scores equals the label
   (a tie within `tie_tolerance`).
3. leakage: phrases that reveal the label ("the preferred image", "as the human chose", "ground
   truth", "label", ...) are removed sentence by sentence from the request analysis, the
   justifications and the summary (or the sample is rejected).
4. repredict: a judge sees the images and the cleaned justifications, but neither the scores nor
   the label, and must predict the label; optionally in both A/B orders to cancel position bias.

A rationale is kept only if every check passes. Verdicts are appended to a JSONL file (resumable);
the kept rationales (re-rendered in the canonical layout, leaks removed) and a report of keep-rates
per check, per data source and per dimension are written at the end.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rr_core.critics.base import Critic
from rr_core.critique import PairDimension, PairwiseCritique, ParseStatus, Preference
from rr_core.critique_format import render_pairwise_critique
from rr_core.parser import PairRule, parse_pairwise
from rr_core.rubric import Task, dimensions
from training.data import PreferencePair
from training.parrot.records import JsonlWriter, latest_by_id, read_jsonl, write_json
from training.parrot.templates import ParrotTemplate, judge_conversation, rationale_for_judge

logger = logging.getLogger(__name__)

CHECKS = ("format", "self_consistency", "leakage", "repredict")
DEFAULT_LEAK_PATTERNS = [
    r"\bpreferred (image|one|edit|candidate|output)\b",
    r"\b(human|annotator|rater|user)s?('s)? (chose|choice|choices|picked|preferred|preference|verdict|vote)",
    r"\bas the (human|annotator|rater|user)s? ",
    r"\bannotators?\b",
    r"\bground[- ]truth\b",
    r"\blabel(s|ed|led)?\b",
    r"\b(known|given|stated|provided) (preference|verdict|answer)\b",
    r"\bwas told\b",
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_IMAGE_REF = re.compile(r"\b(image|Image|IMAGE)(\s+)([AB])\b")


@dataclass
class FilterConfig:
    """Phase 2 settings.

    tie_tolerance: largest |sum A - sum B| that counts as a tie (self-consistency and re-prediction).
    na_value: what N/A counts as in the sums (upstream 2.5).
    leak_patterns: regular expressions (case-insensitive) of label-revealing phrases.
    leak_action: "remove" (drop the sentences that contain one; reject if a justification empties)
        or "reject" (reject the sample).
    repredict: run the label-free re-prediction check (needs a judge critic).
    both_orders: re-predict with A and B swapped as well; both must agree with the label.
    judge_batch_size: conversations per judge call.
    progress: show a tqdm progress bar.
    """

    tie_tolerance: float = 0.0
    na_value: float = 2.5
    leak_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_LEAK_PATTERNS))
    leak_action: str = "remove"
    repredict: bool = True
    both_orders: bool = True
    judge_batch_size: int = 8
    progress: bool = True

    def __post_init__(self) -> None:
        if self.leak_action not in ("remove", "reject"):
            raise ValueError(f"leak_action must be 'remove' or 'reject', got {self.leak_action!r}")
        if self.tie_tolerance < 0:
            raise ValueError("tie_tolerance must be >= 0")
        self.compiled = [re.compile(p, re.IGNORECASE) for p in self.leak_patterns]

    @property
    def rule(self) -> PairRule:
        return PairRule(na_value=self.na_value, tie_tolerance=self.tie_tolerance)


@dataclass
class Check:
    """One check's verdict: passed True/False, or None when it was not run (an earlier check failed)."""

    passed: bool | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason}


# --- the checks --------------------------------------------------------------------------------


def check_format(text: str, task: Task, rule: PairRule, finish_reason: str | None = None
                 ) -> tuple[Check, PairwiseCritique]:
    """Every dimension read with both scores, scores in range, N/A only where allowed."""
    parsed = parse_pairwise(text, task, rule)
    if finish_reason == "length":
        return Check(False, "cut off at the token limit"), parsed
    out_of_range = [p for p in parsed.problems if "out of range" in p]
    bad_na = [p for p in parsed.problems if "N/A is not allowed" in p]
    if bad_na:
        return Check(False, "; ".join(bad_na)), parsed
    if out_of_range:
        return Check(False, "; ".join(out_of_range)), parsed
    if parsed.status is not ParseStatus.OK:
        return Check(False, "; ".join(parsed.problems) or f"parse {parsed.status.value}"), parsed
    return Check(True), parsed


def check_self_consistency(parsed: PairwiseCritique, label: Preference) -> Check:
    """The preference of the rationale's own summed scores equals the label."""
    if parsed.preference == label:
        return Check(True)
    return Check(False, f"scores imply {parsed.preference.value if parsed.preference else None} "
                        f"(A {parsed.total_a} vs B {parsed.total_b}), label is {label.value}")


def find_leaks(text: str, patterns: list[re.Pattern[str]]) -> list[str]:
    return [m.group(0) for p in patterns for m in p.finditer(text)]


def _drop_leaking_sentences(text: str, patterns: list[re.Pattern[str]]) -> tuple[str, int]:
    sentences = _SENTENCE.split(text.strip()) if text.strip() else []
    kept = [s for s in sentences if not find_leaks(s, patterns)]
    return " ".join(kept), len(sentences) - len(kept)


def check_leakage(parsed: PairwiseCritique, config: FilterConfig) -> tuple[Check, PairwiseCritique, dict[str, int]]:
    """Find label-revealing phrases; remove their sentences (or reject). Returns the cleaned critique."""
    per_dim: dict[str, int] = {}
    leaks = []
    for key, entry in parsed.dims.items():
        found = find_leaks(entry.justification, config.compiled)
        per_dim[key] = len(found)
        leaks += found
    leaks += find_leaks(parsed.analysis, config.compiled)
    leaks += find_leaks(parsed.summary, config.compiled)
    if not leaks:
        return Check(True), parsed, per_dim
    if config.leak_action == "reject":
        return Check(False, f"label-revealing phrases: {sorted(set(leaks))}"), parsed, per_dim
    dims: dict[str, PairDimension] = {}
    emptied = []
    removed = 0
    for key, entry in parsed.dims.items():
        text, n = _drop_leaking_sentences(entry.justification, config.compiled)
        removed += n
        if entry.justification.strip() and not text:
            emptied.append(key)
        dims[key] = replace(entry, justification=text)
    analysis, n = _drop_leaking_sentences(parsed.analysis, config.compiled)
    removed += n
    if parsed.analysis.strip() and not analysis:
        emptied.append("analysis")
    summary, n = _drop_leaking_sentences(parsed.summary, config.compiled)
    removed += n
    cleaned = replace(parsed, dims=dims, analysis=analysis, summary=summary)
    if emptied:
        return Check(False, f"justification or analysis empty after removing leaks: {emptied}"), cleaned, per_dim
    return Check(True, f"removed {removed} sentence(s) with {sorted(set(leaks))}"), cleaned, per_dim


def swap_image_refs(text: str) -> str:
    """'Image A' <-> 'Image B', for showing a rationale with the candidates in the other order."""
    return _IMAGE_REF.sub(lambda m: f"{m.group(1)}{m.group(2)}{'B' if m.group(3) == 'A' else 'A'}", text)


def _flip(preference: Preference | None) -> Preference | None:
    return {Preference.A: Preference.B, Preference.B: Preference.A}.get(preference, preference)


def repredict(judge: Critic, items: list[tuple[PreferencePair, PairwiseCritique]], config: FilterConfig,
              templates: dict[str, ParrotTemplate] | None = None) -> list[Check]:
    """The judge predicts each pair's preference from the cleaned rationale, without the label."""
    templates = templates or {}
    conversations, owners = [], []
    for index, (pair, cleaned) in enumerate(items):
        image_a, image_b, source = pair.open()
        rationale = rationale_for_judge(cleaned)
        template = templates.get(pair.task.value)
        conversations.append(judge_conversation(pair.task, pair.request, image_a, image_b, source, rationale,
                                                template))
        owners.append((index, False))
        if config.both_orders:
            conversations.append(judge_conversation(pair.task, pair.request, image_b, image_a, source,
                                                    swap_image_refs(rationale), template))
            owners.append((index, True))
    predictions: dict[int, list[tuple[bool, Preference | None, str]]] = defaultdict(list)
    for start in range(0, len(conversations), config.judge_batch_size):
        batch = conversations[start:start + config.judge_batch_size]
        generations = judge.complete(batch)
        for (index, swapped), generation in zip(owners[start:start + len(batch)], generations):
            pair = items[index][0]
            parsed = parse_pairwise(generation.text, pair.task, config.rule)
            problem = generation.error or ("" if parsed.status is ParseStatus.OK else
                                           f"judge answer parse {parsed.status.value}")
            predicted = _flip(parsed.preference) if swapped else parsed.preference
            predictions[index].append((swapped, predicted, problem))
    checks = []
    for index, (pair, _) in enumerate(items):
        outcomes = predictions[index]
        failed = [f"{'B/A' if s else 'A/B'}: {p}" for s, _, p in outcomes if p]
        if failed:
            checks.append(Check(False, "judge failed: " + "; ".join(failed)))
            continue
        wrong = [f"{'B/A' if s else 'A/B'} order predicted {pred.value if pred else None}"
                 for s, pred, _ in outcomes if pred != pair.label]
        checks.append(Check(not wrong, "; ".join(wrong)))
    return checks


# --- the phase ---------------------------------------------------------------------------------


def _cheap_checks(record: dict[str, Any], pair: PreferencePair, config: FilterConfig
                  ) -> tuple[dict[str, Check], PairwiseCritique | None, dict[str, Any]]:
    checks = {name: Check() for name in CHECKS}
    details: dict[str, Any] = {}
    if record.get("error") or not record.get("text"):
        checks["format"] = Check(False, f"no rationale: {record.get('error') or 'empty text'}")
        return checks, None, details
    checks["format"], parsed = check_format(record["text"], pair.task, config.rule, record.get("finish_reason"))
    details["dims"] = {k: {"score_a": d.score_a, "score_b": d.score_b, "a_na": d.a_not_applicable,
                           "b_na": d.b_not_applicable, "winner": d.winner.value if d.winner else None}
                       for k, d in parsed.dims.items()}
    if not checks["format"].passed:
        return checks, None, details
    checks["self_consistency"] = check_self_consistency(parsed, pair.label)
    checks["leakage"], cleaned, details["leaks_per_dim"] = check_leakage(parsed, config)
    return checks, cleaned, details


def filter_rationales(rationales_path: str | Path, pairs: list[PreferencePair], out_dir: str | Path,
                      config: FilterConfig | None = None, judge: Critic | None = None,
                      templates: dict[str, ParrotTemplate] | None = None) -> dict[str, Any]:
    """Run the checks on every phase-1 rationale; write verdicts.jsonl, kept.jsonl and report.json."""
    config = config or FilterConfig()
    # 1. Inputs: the latest rationale per pair, the pairs it belongs to, verdicts already written.
    if config.repredict and judge is None:
        raise ValueError("the re-prediction check needs a judge critic (or set repredict: false)")
    out_dir = Path(out_dir)
    by_id = {p.pair_id: p for p in pairs}
    rationales = latest_by_id(rationales_path)
    unknown = [i for i in rationales if i not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} rationales name pairs not in the data (e.g. {unknown[:3]}): "
                         "filter with the same data sources as generation")
    verdicts_path = out_dir / "verdicts.jsonl"
    done = latest_by_id(verdicts_path)
    todo = [r for i, r in rationales.items() if i not in done]

    # 2. Cheap checks on everything, then re-prediction on what passed them, in judge batches.
    with JsonlWriter(verdicts_path) as writer:
        bar = tqdm(total=len(todo), desc="consistency filter", disable=not config.progress, unit="pair")
        chunk = max(config.judge_batch_size, 1)
        for start in range(0, len(todo), chunk):
            rows = []
            for record in todo[start:start + chunk]:
                pair = by_id[record["pair_id"]]
                checks, cleaned, details = _cheap_checks(record, pair, config)
                rows.append((record, pair, checks, cleaned, details))
            survivors = [row for row in rows if all(row[2][c].passed for c in CHECKS[:3])]
            if config.repredict and survivors:
                results = repredict(judge, [(r[1], r[3]) for r in survivors], config, templates)
                for row, check in zip(survivors, results):
                    row[2]["repredict"] = check
            for record, pair, checks, cleaned, details in rows:
                required = CHECKS if config.repredict else CHECKS[:3]
                kept = all(checks[c].passed for c in required)
                writer.write({
                    "pair_id": pair.pair_id, "source": pair.source, "task": pair.task.value,
                    "label": pair.label.value, "kept": kept, "checks": {k: v.to_dict() for k, v in checks.items()},
                    "text": render_pairwise_critique(cleaned) if kept and cleaned is not None else "",
                    "teacher": record.get("teacher", ""), **details,
                })
                bar.update(1)
        bar.close()

    # 3. Kept rationales and the report, from every verdict (this run's and earlier ones').
    verdicts = [v for i, v in latest_by_id(verdicts_path).items() if i in rationales]
    with JsonlWriter(out_dir / "kept.jsonl.tmp") as writer:
        for verdict in verdicts:
            if verdict["kept"]:
                writer.write({k: verdict[k] for k in ("pair_id", "source", "task", "label", "text", "teacher")})
    (out_dir / "kept.jsonl.tmp").replace(out_dir / "kept.jsonl")
    report = filter_report(verdicts, config.repredict)
    write_json(out_dir / "report.json", report)
    logger.info("consistency filter: kept %d of %d", report["kept"], report["total"])
    return report


def _rates(verdicts: list[dict[str, Any]], repredict_on: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"total": len(verdicts), "kept": sum(v["kept"] for v in verdicts)}
    out["keep_rate"] = out["kept"] / out["total"] if verdicts else None
    for name in CHECKS:
        if name == "repredict" and not repredict_on:
            continue
        ran = [v["checks"][name]["passed"] for v in verdicts if v["checks"][name]["passed"] is not None]
        out[name] = {"evaluated": len(ran), "passed": sum(ran), "pass_rate": sum(ran) / len(ran) if ran else None}
    judge_failed = sum(1 for v in verdicts if v["checks"]["repredict"]["reason"].startswith("judge failed"))
    if repredict_on:
        out["repredict"]["judge_failed"] = judge_failed
    return out


def filter_report(verdicts: list[dict[str, Any]], repredict_on: bool = True) -> dict[str, Any]:
    """Keep-rates overall, per check, per data source, and per dimension (parsed, winner line
    consistent with its own scores, leaks found)."""
    report = _rates(verdicts, repredict_on)
    by_source: dict[str, list] = defaultdict(list)
    for verdict in verdicts:
        by_source[verdict["source"]].append(verdict)
    report["by_source"] = {s: _rates(v, repredict_on) for s, v in sorted(by_source.items())}
    per_dim: dict[str, Counter] = defaultdict(Counter)
    for verdict in verdicts:
        task = Task.parse(verdict["task"])
        for dim in dimensions(task):
            stats = per_dim[f"{task.value}/{dim.key}"]
            stats["samples"] += 1
            entry = (verdict.get("dims") or {}).get(dim.key)
            if not entry:
                continue
            scores_read = all(entry[f"score_{s}"] is not None or entry[f"{s}_na"] for s in "ab")
            stats["parsed"] += scores_read
            if scores_read and entry["winner"] is not None:
                a = 2.5 if entry["a_na"] else entry["score_a"]
                b = 2.5 if entry["b_na"] else entry["score_b"]
                implied = "tie" if a == b else ("A" if a > b else "B")
                stats["winner_checked"] += 1
                stats["winner_consistent"] += implied == entry["winner"]
            stats["leaks"] += (verdict.get("leaks_per_dim") or {}).get(dim.key, 0)
            stats["kept"] += verdict["kept"]
    report["by_dimension"] = {
        key: {**stats, "parse_rate": stats["parsed"] / stats["samples"] if stats["samples"] else None,
              "winner_consistency": (stats["winner_consistent"] / stats["winner_checked"]
                                     if stats["winner_checked"] else None),
              "keep_rate": stats["kept"] / stats["samples"] if stats["samples"] else None}
        for key, stats in sorted(per_dim.items())}
    return report


def kept_records(out_dir: str | Path) -> list[dict[str, Any]]:
    return list(read_jsonl(Path(out_dir) / "kept.jsonl"))
