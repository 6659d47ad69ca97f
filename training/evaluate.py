"""Pairwise preference accuracy of any critic on any reader's data, in the paper's table layout.

For every pair the critic writes a pairwise critique (Image A vs Image B; optionally again with the
candidates swapped); its preference comes from the summed per-dimension scores (rr_core.parser).
Reported per data source:
- accuracy with ties: over all pairs, a predicted tie is right only on a tie label;
- accuracy without ties: over pairs whose label is not a tie (a predicted tie is wrong there);
- position-swap consistency: share of pairs whose swapped-order answer is the mirror of the first;
- per-dimension agreement, where the data carries per-dimension labels (EditReward-Bench: instruction
  following against text faithfulness, visual quality against image faithfulness + physical quality,
  as the reference scores them);
- failures (backend errors, unparseable or partial critiques) counted apart: never right or wrong.
Beside this strict reading, a reference-comparable one scores every judgement as the reference's
evaluation does, so numbers can be set beside the paper's: a score that is missing, N/A or not a
number counts as `na_value` (2.5), a written value is its first number even outside 1-4, the summed
scores decide (a tie within `tie_tolerance`), pairs labelled a tie are dropped, and only a backend
error (no answer at all) is left out; a critique that did not parse is then a predicted tie, wrong.
Reported as `reference_accuracy` (and `reference_dimension_accuracy`) per data source.
With both orders the original order decides accuracy; the swapped order feeds consistency (and
`accuracy_swapped`). Results are appended to a JSONL file as they arrive, so a rerun resumes; each
is keyed by (critic identity, pair content, order), so several critics can share one results file
and a changed pair (same id, other images or label) is judged again.

Command line (`python -m training.evaluate --help`):
    python -m training.evaluate --preset tiny --data storage:runs/parrot-tiny/synthetic/pairs.jsonl --one-order
    python -m training.evaluate --critic-url http://127.0.0.1:8000/v1 --data mmrb2-t2i:t2i.json ...
    python -m training.evaluate --adapter runs/parrot/student/adapter --data genai-bench-edit:edit.parquet
writes <out>/results.jsonl, <out>/metrics.json (one entry per critic evaluated in that folder) and
<out>/table.md (the paper's columns, then every source with and without ties and consistency).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from rr_core.critics.base import Critic, PairRequest
from rr_core.critique import PairwiseCritique, ParseStatus, Preference
from rr_core.model_identity import model_label
from rr_core.parser import PairRule, parse_pairwise, preference_from_totals
from rr_core.rubric import Task, dimensions
from training.data import BENCHMARK_OF, FORMATS, DataSource, PreferencePair, read_all
from training.parrot.records import JsonlWriter, latest_by_id, write_json

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ("MMRB2-T2I", "MMRB2-Edit", "EditReward-Bench", "GenAI-Bench-T2I", "GenAI-Bench-Edit")
# The studio's own pairs (python -m storage.export --format pairs): a column each, after the paper's.
OWN_DATA_FORMAT = "storage"
TABLE_METRICS = {"strict": "accuracy_without_ties", "reference": "reference_accuracy"}
# Aspects scored from a sum of rubric dimensions (EditReward-Bench's visual quality, as the reference scores it).
COMPOSITE_ASPECTS = {"visual_quality": ("image_faithfulness", "physical_quality")}
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


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


def _folder_stamp(model_id: str) -> str:
    """For a local checkpoint or adapter folder, the newest modification time of its files: a model
    retrained into the same folder is then another model."""
    folder = Path(model_id)
    if not folder.is_dir():
        return ""
    return str(max((f.stat().st_mtime_ns for f in folder.iterdir() if f.is_file()), default=0))


# Backend settings that change how fast answers come, not what they say: left out of a critic's identity
# so that a resumed evaluation with another batch size or server timeout still reuses its results.
OPERATIONAL_SETTINGS = frozenset({"batch_size", "device_map", "concurrency", "timeout_s", "max_retries",
                                  "backoff_s", "api_key", "fast_decode", "prefix_reuse", "dynamic_shapes"})


def critic_identity(critic: Any) -> str:
    """What makes a critic's answers differ: model and adapter (and their folders' state), weights
    precision, decoding, grammar, prompt templates.

    A TaskRouter (one critic per task) is the identities of its critics, task by task.
    """
    if hasattr(critic, "critics"):
        return " + ".join(f"{task.value}: {critic_identity(c)}"
                          for task, c in sorted(critic.critics.items(), key=lambda item: item[0].value))
    config = getattr(critic, "config", None)
    backend = ({k: v for k, v in asdict(config).items() if k not in OPERATIONAL_SETTINGS}
               if is_dataclass(config) else {})
    folders = {backend.get("model", ""), backend.get("adapter", ""), critic.model_id} - {""}
    parts = {"model": critic.model_id, "backend": backend,
             "stamps": {folder: _folder_stamp(folder) for folder in sorted(folders)},
             "decode": asdict(critic.settings), "constrained": critic.constrained,
             "templates": sorted(t.template_version for t in critic.templates.values())}
    return json.dumps(parts, sort_keys=True, default=str)


def critic_name(critic: Any) -> str:
    """A short name for tables and results: the model id, or the per-task model ids of a TaskRouter;
    a local checkpoint (a PARROT student's merged folder, the tiny critic's cache folder) by its
    `name@hash8` identity (rr_core.model_identity.model_label), never by its path."""
    if hasattr(critic, "critics"):
        ids = sorted({model_label(c.model_id) for c in critic.critics.values()})
        return " + ".join(ids)
    return model_label(critic.model_id)


def _image_stamp(image: Any) -> bytes:
    if image is None:
        return b"-"
    if isinstance(image, bytes):
        return hashlib.sha256(image).digest()
    if isinstance(image, Image.Image):
        return hashlib.sha256(image.tobytes() + repr((image.mode, image.size)).encode()).digest()
    path = Path(str(image))
    if path.is_file():
        stat = path.stat()
        return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return str(image).encode()


def pair_fingerprint(pair: PreferencePair) -> str:
    """The pair's content (task, request, label, the three images): a pair id reused for other data,
    e.g. a data set drawn again, is judged again rather than read from the cache."""
    digest = hashlib.sha256()
    for piece in (pair.pair_id, pair.task.value, pair.request, pair.label.value):
        digest.update(piece.encode() + b"\0")
    for image in (pair.image_a, pair.image_b, pair.source_image, *pair.extra_sources):
        digest.update(_image_stamp(image) + b"\0")
    return digest.hexdigest()[:16]


def result_key(identity: str, fingerprint: str, swapped: bool) -> str:
    """The cache key of one judgement: (critic identity, pair content, order)."""
    return f"{hashlib.sha256(identity.encode()).hexdigest()[:16]}|{fingerprint}|{int(swapped)}"


def _flip(p: Preference | None) -> Preference | None:
    return {Preference.A: Preference.B, Preference.B: Preference.A}.get(p, p)


def _reference_value(raw: str, parsed: float | None, fallback: float) -> float:
    """A score as the reference's evaluation reads it: the first number written, else `fallback`."""
    if raw:
        found = _NUMBER.search(raw.replace("*", "").replace("~", ""))
        return float(found.group(1)) if found else fallback
    return parsed if parsed is not None else fallback


def reference_scores(critique: PairwiseCritique, rule: PairRule) -> dict[str, tuple[float, float]]:
    """(A, B) per dimension of the task as the reference scores them: missing, N/A and unreadable
    values count as rule.na_value; a written number counts as written, in range or not."""
    scores = {}
    for dim in dimensions(critique.task):
        entry = critique.dims.get(dim.key)
        if entry is None:
            scores[dim.key] = (rule.na_value, rule.na_value)
            continue
        a = rule.na_value if entry.a_not_applicable else _reference_value(entry.raw_score_a, entry.score_a,
                                                                          rule.na_value)
        b = rule.na_value if entry.b_not_applicable else _reference_value(entry.raw_score_b, entry.score_b,
                                                                          rule.na_value)
        scores[dim.key] = (a, b)
    return scores


def _winners(scores: dict[str, tuple[float, float]], rule: PairRule, swapped: bool) -> dict[str, str]:
    """Per dimension and per composite aspect, the winner in the pair's own order (A, B or tie)."""
    sums = dict(scores)
    for aspect, keys in COMPOSITE_ASPECTS.items():
        if all(k in scores for k in keys):
            sums[aspect] = (sum(scores[k][0] for k in keys), sum(scores[k][1] for k in keys))
    out = {}
    for key, (a, b) in sums.items():
        winner = preference_from_totals(a, b, rule)
        out[key] = (_flip(winner) if swapped else winner).value
    return out


def _judge_batch(critic: Critic, batch: list[tuple[PreferencePair, bool, str]], rule: PairRule,
                 name: str) -> list[dict[str, Any]]:
    requests = []
    for pair, swapped, _ in batch:
        image_a, image_b, source = pair.open()
        first, second = (image_b, image_a) if swapped else (image_a, image_b)
        requests.append(PairRequest(pair.task, pair.request, first, second, source))
    try:
        critiques = critic.compare_many(requests)
    except Exception as exc:  # noqa: BLE001 - recorded as failures for this batch, retried on the next run
        logger.warning("critic batch failed: %s", exc)
        return [{"key": k, "critic": name, "pair_id": p.pair_id, "swapped": s, "source": p.source,
                 "label": p.label.value, "prediction": None, "failed": True,
                 "error": f"{type(exc).__name__}: {exc}", "dims": {}} for p, s, k in batch]
    results = []
    for (pair, swapped, result_id), critique in zip(batch, critiques):
        parsed = parse_pairwise(critique.raw_text, pair.task, rule) if not critique.error else critique
        failed = bool(critique.error) or parsed.status is not ParseStatus.OK or parsed.preference is None
        prediction = _flip(parsed.preference) if swapped else parsed.preference
        strict_scores = {}
        for key, entry in parsed.dims.items():
            a = rule.na_value if entry.a_not_applicable else entry.score_a
            b = rule.na_value if entry.b_not_applicable else entry.score_b
            if a is not None and b is not None:
                strict_scores[key] = (a, b)
        dims = _winners(strict_scores, rule, swapped)
        reference = None
        if not critique.error:
            totals = reference_scores(parsed, rule).items()
            reference_dims = _winners(dict(totals), rule, swapped)
            winner = preference_from_totals(sum(a for _, (a, _) in totals), sum(b for _, (_, b) in totals), rule)
            reference = {"prediction": (_flip(winner) if swapped else winner).value, "dims": reference_dims}
        results.append({
            "key": result_id, "critic": name, "pair_id": pair.pair_id, "swapped": swapped,
            "source": pair.source, "label": pair.label.value,
            "prediction": None if failed else prediction.value, "failed": failed,
            "error": critique.error or ("; ".join(parsed.problems) if failed else ""),
            "dims": dims, "status": parsed.status.value, "completion_tokens": critique.completion_tokens,
            "reference": reference,
        })
    return results


def evaluate_critic(critic: Critic, pairs: list[PreferencePair], out_path: str | Path,
                    config: EvaluateConfig = EvaluateConfig()) -> dict[str, Any]:
    """Judge every pair (both orders if configured), append results to `out_path`, return the metrics.

    Results already in `out_path` for this critic (same identity) and the same pair content are
    reused; other critics' results in the same file are left alone and never counted here.
    """
    config = config or EvaluateConfig()
    # 1. Work left: (critic, pair content, order) keys without a successful result yet.
    identity, name = critic_identity(critic), critic_name(critic)
    keys = {(p.pair_id, s): result_key(identity, pair_fingerprint(p), s)
            for p in pairs for s in (False, True)}
    done = {k for k, r in latest_by_id(out_path, key="key").items() if not r["failed"]}
    orders = (False, True) if config.both_orders else (False,)
    jobs = [(p, s, keys[p.pair_id, s]) for p in pairs for s in orders if keys[p.pair_id, s] not in done]
    if config.limit:
        jobs = jobs[:config.limit * (2 if config.both_orders else 1)]
    batches = [jobs[i:i + config.batch_size] for i in range(0, len(jobs), config.batch_size)]

    # 2. Batches through the critic, results appended as they arrive.
    start = time.perf_counter()
    with JsonlWriter(out_path) as writer, tqdm(total=len(jobs), desc="evaluation", unit="judgement",
                                               disable=not config.progress) as bar, \
            ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        futures = [pool.submit(_judge_batch, critic, b, config.rule, name) for b in batches]
        for future in as_completed(futures):
            for record in future.result():
                writer.write(record)
                bar.update(1)
    seconds = time.perf_counter() - start

    # 3. Metrics over this critic's results on file for these pairs (as they are now).
    wanted = set(keys.values())
    results = [r for k, r in latest_by_id(out_path, key="key").items() if k in wanted]
    metrics = compute_metrics(results, {p.pair_id: p for p in pairs})
    metrics["seconds"] = seconds
    metrics["model_id"] = name
    metrics["critic_identity"] = identity
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
    out.update(_reference_metrics(first, pairs))
    return out


def _reference_metrics(first: list[dict[str, Any]], pairs: dict[str, PreferencePair]) -> dict[str, Any]:
    """The reference-comparable reading (module docstring): ties dropped, only backend errors left out."""
    judged = [r for r in first if r.get("reference")]
    no_tie = [r for r in judged if r["label"] != Preference.TIE.value]
    out: dict[str, Any] = {
        "reference_accuracy": (sum(r["reference"]["prediction"] == r["label"] for r in no_tie) / len(no_tie)
                               if no_tie else None),
        "reference_evaluated": len(no_tie), "reference_left_out": len(first) - len(judged),
    }
    per_dim: dict[str, list[bool]] = defaultdict(list)
    for r in judged:
        for key, label in pairs[r["pair_id"]].dimension_labels.items():
            if label is not Preference.TIE and key in r["reference"]["dims"]:
                per_dim[key].append(r["reference"]["dims"][key] == label.value)
    if per_dim:
        out["reference_dimension_accuracy"] = {k: sum(v) / len(v) for k, v in sorted(per_dim.items())}
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
    """A Markdown table in the paper's columns (MMRB2-T2I ... GenAI-Bench-Edit), then one column per set
    of the studio's own pairs (format storage, headed by the set's name), one row per critic.

    rows: critic name -> metrics from `evaluate_critic`; source_formats: data source name -> format
    (which column it reports under). A column without data shows "-".
    """
    own = sorted(s for s, f in source_formats.items() if f == OWN_DATA_FORMAT)
    columns = [(c, [s for s, f in source_formats.items() if BENCHMARK_OF.get(f) == c]) for c in TABLE_COLUMNS]
    columns += [(s, [s]) for s in own]
    lines = ["| critic | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, metrics in rows.items():
        cells = []
        for _, sources in columns:
            values = [metrics["by_source"][s].get(metric) for s in sources if s in metrics["by_source"]]
            values = [v for v in values if v is not None]
            cells.append(f"{100 * values[0]:.1f}" if values else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sources_table(rows: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of every data source, one row per (critic, source): accuracy with and without
    ties, position consistency (when both orders were judged) and failures."""
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    lines = ["| critic | source | pairs | failures | accuracy with ties | accuracy without ties "
             "| position consistency | reference-comparable |", "|---" * 8 + "|"]
    for name, metrics in rows.items():
        for source, m in metrics["by_source"].items():
            cells = [name, source, str(m["pairs"]), str(m["failures"]), percent(m["accuracy_with_ties"]),
                     percent(m["accuracy_without_ties"]), percent(m.get("position_consistency")),
                     percent(m.get("reference_accuracy"))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dimensions_table(rows: dict[str, dict[str, Any]]) -> str:
    """Per-dimension numbers where a data source carries per-dimension labels (EditReward-Bench):
    strict agreement and the reference-comparable accuracy, one row per (critic, source, aspect)."""
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    lines = []
    for name, metrics in rows.items():
        for source, m in metrics["by_source"].items():
            strict, reference = m.get("dimension_agreement") or {}, m.get("reference_dimension_accuracy") or {}
            for aspect in sorted(set(strict) | set(reference)):
                lines.append(f"| {name} | {source} | {aspect} | {percent(strict.get(aspect))} "
                             f"| {percent(reference.get(aspect))} |")
    if not lines:
        return ""
    return "\n".join(["| critic | source | aspect | agreement (strict) | reference-comparable |",
                      "|---" * 5 + "|", *lines])


# --- command line ------------------------------------------------------------------------------

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOTHING_JUDGED = 0, 1, 2, 3
EPILOG = f"""pair sets:
  --data [NAME=]FORMAT:PATH, PATH a file or a folder, FORMAT one of
  {', '.join(FORMATS)}
exit codes:
  {EXIT_OK}  evaluated (failed judgements are counted apart, not fatal)
  {EXIT_ERROR}  the pairs or the critic could not be loaded
  {EXIT_USAGE}  bad arguments
  {EXIT_NOTHING_JUDGED}  no judgement succeeded (no accuracy to report)"""


def parse_data_arg(text: str) -> DataSource:
    """`[NAME=]FORMAT:PATH` as a DataSource (argparse type)."""
    name, _, spec = text.rpartition("=") if "=" in text.split(":", 1)[0] else ("", "", text)
    fmt, sep, path = spec.partition(":")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected [NAME=]FORMAT:PATH, got {text!r}")
    try:
        return DataSource(fmt, path, name=name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _unique_names(sources: list[DataSource]) -> list[DataSource]:
    """Sources that share a name (two sets of one format, unnamed) are told apart by their file name."""
    counts: dict[str, int] = defaultdict(int)
    for source in sources:
        counts[source.name] += 1
    for source in sources:
        if counts[source.name] > 1:
            source.name = f"{source.name}:{Path(source.path).stem}"
    if len({s.name for s in sources}) != len(sources):
        raise ValueError("two pair sets have the same name: name them (NAME=FORMAT:PATH)")
    return sources


def _adapter_base(adapter: str) -> str:
    config = Path(adapter) / "adapter_config.json"
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {config} ({exc}): is {adapter} a PEFT adapter folder?") from exc
    if not base:
        raise ValueError(f"{config} names no base model: pass --base-model")
    return str(base)


def build_cli_critic(args: argparse.Namespace, tasks: list[str]) -> Any:
    """The critic the arguments name: a preset, a server, a checkpoint or an adapter (+ its base)."""
    from training.parrot.critics import CriticSpec, build_critic

    overrides: dict[str, Any] = {}
    if args.max_new_tokens:
        overrides["max_new_tokens"] = args.max_new_tokens
    if args.constrained:
        overrides["constrained"] = True
    if args.preset:
        from rr_core.critics.router import TaskRouter
        from rr_core.presets import resolve_preset

        preset = resolve_preset(args.preset)
        groups: dict[str, list[str]] = defaultdict(list)
        for task in tasks:
            settings = {k: v for k, v in preset.critic_settings[Task.parse(task)].items() if k != "tasks"}
            groups[json.dumps(settings, sort_keys=True, default=str)].append(task)
        critics = {}
        for settings_json, group in groups.items():
            settings = {**json.loads(settings_json), **overrides, "tasks": group}
            if preset.critic_kind == "transformers":
                settings["batch_size"] = args.batch_size
            critic = build_critic(CriticSpec(preset.critic_kind, settings))
            critics.update({task: critic for task in group})
        unique = {id(c): c for c in critics.values()}
        return next(iter(unique.values())) if len(unique) == 1 else TaskRouter(critics)
    if args.critic_url:
        return build_critic(CriticSpec("openai", {
            "base_url": args.critic_url, "model": args.critic_model or "", "tasks": tasks,
            "concurrency": args.concurrency, **overrides}))
    settings = {"tasks": tasks, "batch_size": args.batch_size, **overrides}
    if args.adapter:
        settings.update(adapter=args.adapter, model=args.base_model or _adapter_base(args.adapter))
    else:
        settings["model"] = args.model
    return build_critic(CriticSpec("transformers", settings))


def _row_name(rows: dict[str, dict[str, Any]], wanted: str | None, metrics: dict[str, Any]) -> str:
    """The critic's row in metrics.json: `wanted` (--name) as given; by default its model id, with a
    short identity hash added when that row holds another critic (same model, other decoding)."""
    if wanted:
        return wanted
    name, identity = metrics["model_id"], metrics["critic_identity"]
    if name in rows and rows[name].get("critic_identity") != identity:
        name = f"{name} #{hashlib.sha256(identity.encode()).hexdigest()[:6]}"
    return name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pairwise preference accuracy of a critic on one or more pair sets: accuracy with and "
                    "without ties, position-swap consistency, failures counted apart; resumable.")
    critic = parser.add_argument_group("critic (exactly one)").add_mutually_exclusive_group(required=True)
    critic.add_argument("--preset", choices=("tiny", "rationalrewards", "remote", "auto"),
                        help="a model preset of the app (remote reads RR_CRITIC_URL)")
    critic.add_argument("--critic-url", help="an OpenAI-compatible server (vLLM, python -m rr_core.serve)")
    critic.add_argument("--model", help="a Hugging Face id or local folder of a Qwen3-VL / Qwen2.5-VL critic")
    critic.add_argument("--adapter", help="a PEFT (LoRA) adapter folder, e.g. a PARROT student's")
    parser.add_argument("--base-model", help="the adapter's base model (default: the one its config names)")
    parser.add_argument("--critic-model",
                        help="the served model name at --critic-url (default: the first listed)")
    parser.add_argument("--data", action="append", required=True, type=parse_data_arg,
                        metavar="[NAME=]FORMAT:PATH", help="a pair set (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate"),
                        help="folder of results.jsonl, metrics.json and table.md (default: %(default)s)")
    parser.add_argument("--name", help="the critic's name in the tables (default: its model id)")
    parser.add_argument("--one-order", action="store_true",
                        help="skip the A/B-swapped order (no consistency)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many pairs (0: all)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="pairs per critic call (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight to a server")
    parser.add_argument("--max-new-tokens", type=int, default=0,
                        help="critique token limit (0: the critic's)")
    parser.add_argument("--constrained", action="store_true", help="decode under the critique grammar")
    parser.add_argument("--tie-tolerance", type=float, default=0.0,
                        help="|sum A - sum B| that is still a tie")
    parser.add_argument("--table-metric", choices=sorted(TABLE_METRICS), default="strict",
                        help="the paper-layout table's number: strict (accuracy without ties, failures "
                             "apart) or reference (scored as the reference's evaluation; default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (see EPILOG)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("training.evaluate")
    if args.base_model and not args.adapter:
        parser.error("--base-model goes with --adapter")
    if args.critic_model and not args.critic_url:
        parser.error("--critic-model goes with --critic-url")
    try:
        config = EvaluateConfig(both_orders=not args.one_order, batch_size=args.batch_size,
                                concurrency=args.concurrency if args.critic_url else 1,
                                tie_tolerance=args.tie_tolerance, limit=args.limit,
                                progress=not args.no_progress)
        sources = _unique_names(args.data)
        pairs, reports = read_all(sources)
    except (OSError, ValueError) as exc:
        parser.exit(EXIT_ERROR, f"{parser.prog}: cannot read the pairs: {exc}\n")
    for report in reports:
        log.info("read %s", report.to_dict())
    if not pairs:
        parser.exit(EXIT_ERROR, f"{parser.prog}: the pair sets hold no usable pairs\n")
    try:
        critic = build_cli_critic(args, sorted({p.task.value for p in pairs}))
    except (OSError, ValueError, ConnectionError) as exc:
        parser.exit(EXIT_ERROR, f"{parser.prog}: cannot load the critic: {exc}\n")

    metrics = evaluate_critic(critic, pairs, args.out / "results.jsonl", config)
    metrics["sources"] = {s.name: s.format for s in sources}
    rows_path = args.out / "metrics.json"
    rows = json.loads(rows_path.read_text(encoding="utf-8")) if rows_path.is_file() else {}
    name = _row_name(rows, args.name, metrics)
    rows[name] = metrics
    write_json(rows_path, rows)
    formats = {source: fmt for m in rows.values() for source, fmt in m.get("sources", {}).items()}
    table = paper_table(rows, formats, TABLE_METRICS[args.table_metric]) + "\n\n" + sources_table(rows)
    per_dimension = dimensions_table(rows)
    if per_dimension:
        table += "\n\n" + per_dimension
    (args.out / "table.md").write_text(table + "\n", encoding="utf-8")
    sys.stdout.write(table + "\n")
    if not metrics["overall"]["evaluated_with_ties"]:
        log.error("no judgement of %s succeeded (%d failed): see %s", name, metrics["overall"]["failures"],
                  args.out / "results.jsonl")
        return EXIT_NOTHING_JUDGED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
