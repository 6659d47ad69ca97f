"""The PARROT pipeline: one configuration, one function per phase, and `run_all` composing them.

Every phase reads its inputs from and writes its outputs to `work_dir`:
  rationales.jsonl, generate_summary.json      (generate)
  filter/verdicts.jsonl, filter/kept.jsonl, filter/report.json, sft.jsonl (+ sft.jsonl.images/)  (filter)
  student/ (checkpoints, adapter, merged, train_log.jsonl)                                       (distill)
  eval/results.jsonl, eval/metrics.json, eval/table.md                                           (evaluate)
Critics can be passed in (tests pass scripted ones); otherwise they are built from the config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rr_core.critics.base import Critic
from training.data import DataSource, PreferencePair, read_all
from training.evaluate import EvaluateConfig, evaluate_critic, paper_table
from training.parrot.circle_critic import CircleCritic
from training.parrot.critics import CriticSpec, build_critic
from training.parrot.distill import DistillConfig, train
from training.parrot.filtering import FilterConfig, filter_rationales, kept_records
from training.parrot.generate import GenerateConfig, generate_rationales
from training.parrot.overlap import OVERLAP_ACTIONS, guard_training_pairs
from training.parrot.pointwise import PointwiseConfig, filter_pointwise, generate_pointwise, pointwise_kept
from training.parrot.records import write_json
from training.parrot.sft_data import build_sft_dataset
from training.parrot.synthetic import SyntheticSet

logger = logging.getLogger(__name__)

TINY_BASE_MODEL = "tiny"


@dataclass
class PipelineConfig:
    """Everything a PARROT run needs (YAML: training/configs/parrot_*.yaml).

    work_dir: where every phase writes (see the module docstring).
    data: preference pairs for phases 1-3 (training.data.DataSource entries).
    eval_data: pairs to evaluate on (benchmarks); empty means `data`.
    teacher: the critic that writes anchored rationales (phase 1).
    judge: the label-free re-prediction judge (phase 2); empty means the teacher.
    student: the critic evaluated in phase 4; empty means the distilled model in work_dir/student/merged.
    pointwise_files: sharegpt JSONL files of pointwise critiques mixed into the SFT data.
    synthetic: the drawn circle set (training.parrot.synthetic.SyntheticSet), added to `data` and
        drawn on first use; with `circle_critic` its rule-based critic is the teacher and the judge.
    derived_pointwise: pointwise critiques derived from the pairs (training.parrot.pointwise): whether
        to make them and how many go into the SFT mix per pairwise sample.
    eval_overlap: what to do with training pairs that `eval_data` contains (same request and a
        candidate image with the same pixels): "refuse" (stop with an error, the default) or "drop".
    generate, filter, distill, evaluate: each phase's settings. `distill.base_model: tiny` is the
        offline random-weight Qwen3-VL (rr_core.critics.tiny), built on first use.
    """

    work_dir: str = "runs/parrot"
    data: list[DataSource] = field(default_factory=list)
    eval_data: list[DataSource] = field(default_factory=list)
    teacher: CriticSpec | None = None
    judge: CriticSpec | None = None
    student: CriticSpec | None = None
    pointwise_files: list[str] = field(default_factory=list)
    synthetic: SyntheticSet | None = None
    eval_overlap: str = "refuse"
    derived_pointwise: PointwiseConfig = field(default_factory=PointwiseConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        if self.synthetic and self.synthetic.circle_critic and (self.teacher or self.judge):
            raise ValueError("synthetic.circle_critic makes the circle counter teacher and judge: "
                             "name no teacher or judge as well")
        if self.eval_overlap not in OVERLAP_ACTIONS:
            raise ValueError(f"eval_overlap must be one of {', '.join(OVERLAP_ACTIONS)}, got {self.eval_overlap!r}")

    @property
    def root(self) -> Path:
        return Path(self.work_dir)

    @property
    def sources(self) -> list[DataSource]:
        """The training pairs: `data`, then the synthetic set when one is configured."""
        return [*self.data, *([self.synthetic.source()] if self.synthetic else [])]

    def distill_config(self) -> DistillConfig:
        base_model = self.distill.base_model
        if base_model == TINY_BASE_MODEL:
            from rr_core.critics.tiny import ensure_tiny_critic

            base_model = str(ensure_tiny_critic())
        return replace(self.distill, base_model=base_model,
                       dataset=self.distill.dataset or str(self.root / "sft.jsonl"),
                       output_dir=self.distill.output_dir or str(self.root / "student"))

    def rule_critic(self) -> Critic | None:
        """The circle counter when the synthetic set's rule-based critic is the teacher and judge."""
        return CircleCritic() if self.synthetic and self.synthetic.circle_critic else None


def _pairs(sources: list[DataSource], synthetic: SyntheticSet | None = None) -> list[PreferencePair]:
    if synthetic:
        synthetic.ensure()
    if not sources:
        raise ValueError("no data sources configured (the `data` list is empty and no `synthetic` set)")
    pairs, reports = read_all(sources)
    for report in reports:
        logger.info("read %s", report.to_dict())
    return pairs


def training_pairs(config: PipelineConfig) -> list[PreferencePair]:
    """The pairs phases 1-2 train on, checked against `eval_data` (see training.parrot.overlap)."""
    pairs = _pairs(config.sources, config.synthetic)
    if not config.eval_data:
        return pairs
    kept = guard_training_pairs(pairs, _pairs(config.eval_data), config.eval_overlap)
    if not kept:
        raise ValueError("no training pairs left: the evaluation data contains every one of them")
    if len(kept) < len(pairs):
        logger.warning("left out %d training pair(s) that the evaluation data contains", len(pairs) - len(kept))
    return kept


def _critic(spec: CriticSpec | None, role: str) -> Critic:
    if spec is None:
        raise ValueError(f"no {role} critic configured")
    return build_critic(spec)


def run_generate(config: PipelineConfig, teacher: Critic | None = None) -> dict[str, Any]:
    """Phase 1: anchored rationales for every training pair (`data` and the synthetic set)."""
    pairs = training_pairs(config)
    teacher = teacher or config.rule_critic() or _critic(config.teacher, "teacher")
    summary = generate_rationales(teacher, pairs, config.root / "rationales.jsonl", config.generate).to_dict()
    if config.derived_pointwise.enabled:
        summary["pointwise"] = generate_pointwise(teacher, pairs, config.root / "pointwise_rationales.jsonl",
                                                  config.generate.batch_size)
    write_json(config.root / "generate_summary.json", summary)
    return summary


def run_filter(config: PipelineConfig, judge: Critic | None = None) -> dict[str, Any]:
    """Phase 2: the four checks, the report, and the SFT dataset built from what was kept."""
    pairs = training_pairs(config)
    if config.filter.repredict and judge is None:
        judge = config.rule_critic() or _critic(config.judge or config.teacher, "judge")
    report = filter_rationales(config.root / "rationales.jsonl", pairs, config.root / "filter", config.filter, judge)
    derived: list[dict[str, Any]] = []
    if config.derived_pointwise.enabled:
        report["pointwise"] = filter_pointwise(config.root / "pointwise_rationales.jsonl", pairs,
                                               config.root / "filter", config.filter, judge)
        derived = pointwise_kept(config.root / "filter")
    counts = build_sft_dataset(kept_records(config.root / "filter"), pairs, config.root / "sft.jsonl",
                               config.pointwise_files, seed=config.distill.seed, derived_pointwise=derived,
                               derived_ratio=config.derived_pointwise.ratio)
    report["sft_samples"] = counts
    write_json(config.root / "filter" / "report.json", report)
    return report


def run_distill(config: PipelineConfig) -> dict[str, Any]:
    """Phase 3: SFT of the student on work_dir/sft.jsonl (run under `accelerate launch` for multi-GPU)."""
    return train(config.distill_config())


def run_evaluate(config: PipelineConfig, critic: Critic | None = None) -> dict[str, Any]:
    """Phase 4: pairwise accuracy of the student (or the configured critic) on eval_data."""
    sources = config.eval_data or config.sources
    pairs = _pairs(sources, None if config.eval_data else config.synthetic)
    if critic is None:
        spec = config.student or CriticSpec("transformers", {
            "model": str(Path(config.distill_config().output_dir) / "merged"),
            "tasks": sorted({p.task.value for p in pairs})})
        critic = build_critic(spec)
    out = config.root / "eval"
    metrics = evaluate_critic(critic, pairs, out / "results.jsonl", config.evaluate)
    write_json(out / "metrics.json", metrics)
    table = paper_table({metrics["model_id"]: metrics}, {s.name: s.format for s in sources})
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    metrics["table"] = table
    return metrics


def run_all(config: PipelineConfig, teacher: Critic | None = None, judge: Critic | None = None,
            student: Critic | None = None) -> dict[str, Any]:
    """All four phases in order; each is resumable, so a rerun continues where the last one stopped."""
    results = {"generate": run_generate(config, teacher)}
    results["filter"] = run_filter(config, judge or (teacher if config.judge is None else None))
    results["distill"] = run_distill(config)
    results["evaluate"] = run_evaluate(config, student)
    return results
