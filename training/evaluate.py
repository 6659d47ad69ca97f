"""Pairwise preference accuracy of any critic on any reader's data, in the paper's table layout.

For every pair the critic writes a pairwise critique (Image A vs Image B; optionally again with the
candidates swapped); its preference comes from the summed per-dimension scores (rr_core.parser).
Reported per data source:
- accuracy with ties: over all pairs, a predicted tie is right only on a tie label;
- accuracy without ties: over pairs whose label is not a tie (a predicted tie is wrong there);
- position-swap consistency: share of pairs whose swapped-order answer is the mirror of the first;
- per-dimension agreement, where the data carries per-dimension labels;
- failures (backend errors, unparseable or partial critiques) counted apart: never right or wrong.
With both orders the original order decides accuracy; the swapped order feeds consistency (and
`accuracy_swapped`). Results are appended to a JSONL file as they arrive, so a rerun resumes.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rr_core.critics.base import Critic, PairRequest
from rr_core.critique import ParseStatus, Preference
from rr_core.parser import PairRule, parse_pairwise
from training.data import BENCHMARK_OF, PreferencePair
from training.parrot.records import JsonlWriter, latest_by_id

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ("MMRB2-T2I", "MMRB2-Edit", "EditReward-Bench", "GenAI-Bench-T2I", "GenAI-Bench-Edit")


@dataclass
class EvaluateConfig:
    """Evaluation settings.

    both_orders: also judge every pair with A and B swapped (position-swap consistency).
    batch_size: pairs per critic call; concurrency: calls in flight (server backends).
    tie_tolerance, na_value: how summed scores become a preference (see rr_core.parser.PairRule).
    limit: evaluate at most this many pairs per run (0: all). progress: tqdm bar.
    """

    both_orders: bool = True
    batch_size: int = 8
    concurrency: int = 1
    tie_tolerance: float = 0.0
    na_value: float = 2.5
    limit: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")

    @property
    def rule(self) -> PairRule:
        return PairRule(na_value=self.na_value, tie_tolerance=self.tie_tolerance)


def _flip(p: Preference | None) -> Preference | None:
    return {Preference.A: Preference.B, Preference.B: Preference.A}.get(p, p)


def _judge_batch(critic: Critic, batch: list[tuple[PreferencePair, bool]], rule: PairRule) -> list[dict[str, Any]]:
    requests = []
    for pair, swapped in batch:
        image_a, image_b, source = pair.open()
        first, second = (image_b, image_a) if swapped else (image_a, image_b)
        requests.append(PairRequest(pair.task, pair.request, first, second, source))
    try:
        critiques = critic.compare_many(requests)
    except Exception as exc:  # noqa: BLE001 - recorded as failures for this batch, retried on the next run
        logger.warning("critic batch failed: %s", exc)
        return [{"key": f"{p.pair_id}|{int(s)}", "pair_id": p.pair_id, "swapped": s, "source": p.source,
                 "label": p.label.value, "prediction": None, "failed": True,
                 "error": f"{type(exc).__name__}: {exc}", "dims": {}} for p, s in batch]
    results = []
    for (pair, swapped), critique in zip(batch, critiques):
        parsed = parse_pairwise(critique.raw_text, pair.task, rule) if not critique.error else critique
        failed = bool(critique.error) or parsed.status is not ParseStatus.OK or parsed.preference is None
        prediction = _flip(parsed.preference) if swapped else parsed.preference
        dims = {}
        for key, entry in parsed.dims.items():
            a = rule.na_value if entry.a_not_applicable else entry.score_a
            b = rule.na_value if entry.b_not_applicable else entry.score_b
            if a is not None and b is not None:
                winner = Preference.TIE if abs(a - b) <= rule.tie_tolerance + 1e-9 else (
                    Preference.A if a > b else Preference.B)
                dims[key] = (_flip(winner) if swapped else winner).value
        results.append({
            "key": f"{pair.pair_id}|{int(swapped)}", "pair_id": pair.pair_id, "swapped": swapped,
            "source": pair.source, "label": pair.label.value,
            "prediction": None if failed else prediction.value, "failed": failed,
            "error": critique.error or ("; ".join(parsed.problems) if failed else ""),
            "dims": dims, "status": parsed.status.value, "completion_tokens": critique.completion_tokens,
        })
    return results


def evaluate_critic(critic: Critic, pairs: list[PreferencePair], out_path: str | Path,
                    config: EvaluateConfig = EvaluateConfig()) -> dict[str, Any]:
    """Judge every pair (both orders if configured), append results to `out_path`, return the metrics."""
    config = config or EvaluateConfig()
    # 1. Work left: (pair, order) keys without a successful result yet.
    done = {k for k, r in latest_by_id(out_path, key="key").items() if not r["failed"]}
    jobs = [(p, s) for p in pairs for s in ((False, True) if config.both_orders else (False,))
            if f"{p.pair_id}|{int(s)}" not in done]
    if config.limit:
        jobs = jobs[:config.limit * (2 if config.both_orders else 1)]
    batches = [jobs[i:i + config.batch_size] for i in range(0, len(jobs), config.batch_size)]

    # 2. Batches through the critic, results appended as they arrive.
    start = time.perf_counter()
    with JsonlWriter(out_path) as writer, tqdm(total=len(jobs), desc="evaluation", unit="judgement",
                                               disable=not config.progress) as bar, \
            ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        for future in as_completed([pool.submit(_judge_batch, critic, b, config.rule) for b in batches]):
            for record in future.result():
                writer.write(record)
                bar.update(1)
    seconds = time.perf_counter() - start

    # 3. Metrics over every result on file for these pairs.
    wanted = {p.pair_id for p in pairs}
    results = [r for r in latest_by_id(out_path, key="key").values() if r["pair_id"] in wanted]
    metrics = compute_metrics(results, {p.pair_id: p for p in pairs})
    metrics["seconds"] = seconds
    metrics["model_id"] = critic.model_id
    return metrics


def _source_metrics(results: list[dict[str, Any]], pairs: dict[str, PreferencePair]) -> dict[str, Any]:
    first = [r for r in results if not r["swapped"]]
    second = {r["pair_id"]: r for r in results if r["swapped"]}
    ok = [r for r in first if not r["failed"]]
    no_tie = [r for r in ok if r["label"] != Preference.TIE.value]
    out: dict[str, Any] = {
        "pairs": len(first), "failures": len(first) - len(ok),
        "accuracy_with_ties": sum(r["prediction"] == r["label"] for r in ok) / len(ok) if ok else None,
        "accuracy_without_ties": (sum(r["prediction"] == r["label"] for r in no_tie) / len(no_tie)
                                  if no_tie else None),
        "evaluated_with_ties": len(ok), "evaluated_without_ties": len(no_tie),
    }
    swapped_ok = [s for s in second.values() if not s["failed"]]
    if second:
        out["swapped_failures"] = len(second) - len(swapped_ok)
        both = [(r, second[r["pair_id"]]) for r in ok if r["pair_id"] in second and not second[r["pair_id"]]["failed"]]
        out["position_consistency"] = sum(a["prediction"] == b["prediction"] for a, b in both) / len(both) if both else None
        out["accuracy_swapped"] = (sum(s["prediction"] == s["label"] for s in swapped_ok) / len(swapped_ok)
                                   if swapped_ok else None)
    per_dim: dict[str, list[bool]] = defaultdict(list)
    for r in ok:
        for key, label in pairs[r["pair_id"]].dimension_labels.items():
            if key in r["dims"]:
                per_dim[key].append(r["dims"][key] == label.value)
    if per_dim:
        out["dimension_agreement"] = {k: sum(v) / len(v) for k, v in sorted(per_dim.items())}
    return out


def compute_metrics(results: list[dict[str, Any]], pairs: dict[str, PreferencePair]) -> dict[str, Any]:
    """Metrics per data source and overall, from the per-judgement records."""
    by_source: dict[str, list] = defaultdict(list)
    for r in results:
        by_source[r["source"]].append(r)
    return {"overall": _source_metrics(results, pairs),
            "by_source": {s: _source_metrics(rs, pairs) for s, rs in sorted(by_source.items())}}


def paper_table(rows: dict[str, dict[str, Any]], source_formats: dict[str, str],
                metric: str = "accuracy_without_ties") -> str:
    """A Markdown table in the paper's columns (MMRB2-T2I ... GenAI-Bench-Edit), one row per critic.

    rows: critic name -> metrics from `evaluate_critic`; source_formats: data source name -> format
    (which column it reports under). A column without data shows "-".
    """
    lines = ["| critic | " + " | ".join(TABLE_COLUMNS) + " |", "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for name, metrics in rows.items():
        cells = []
        for column in TABLE_COLUMNS:
            sources = [s for s, f in source_formats.items() if BENCHMARK_OF.get(f) == column]
            values = [metrics["by_source"][s].get(metric) for s in sources if s in metrics["by_source"]]
            values = [v for v in values if v is not None]
            cells.append(f"{100 * values[0]:.1f}" if values else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
