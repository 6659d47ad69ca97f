"""Phase 1, anchored generation: the teacher sees request, images and the known preference and
writes a pairwise rationale (per-dimension justification, Score A, Score B, Winner) that argues it.

Batched (the backend's `generate` takes a batch) and concurrent (several batches in flight, for
server backends); resumable: results are appended to a JSONL file as they arrive and ids already
written without error are skipped on the next run. Ends with a throughput and token summary.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rr_core.critics.base import Critic, Generation
from rr_core.parser import parse_pairwise
from training.data import PreferencePair
from training.parrot.records import JsonlWriter, latest_by_id
from training.parrot.templates import ParrotTemplate, anchored_conversation

logger = logging.getLogger(__name__)


@dataclass
class GenerateConfig:
    """Phase 1 settings.

    batch_size: pairs per call of the teacher's `generate` (one padded batch in-process).
    concurrency: batches in flight at once (>1 only helps server backends).
    limit: generate for at most this many pending pairs (0: all).
    progress: show a tqdm progress bar.
    """

    batch_size: int = 8
    concurrency: int = 1
    limit: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")


@dataclass
class GenerateSummary:
    """What a phase-1 run did, and at what cost."""

    pending: int = 0
    written: int = 0
    failed: int = 0
    skipped_done: int = 0
    seconds: float = 0.0
    samples_per_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    completion_tokens_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record(pair: PreferencePair, generation: Generation | None, error: str, teacher: Critic,
            template_version: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "pair_id": pair.pair_id, "source": pair.source, "task": pair.task.value, "label": pair.label.value,
        "teacher": teacher.model_id, "template_version": template_version, "error": error,
        "text": "", "status": "failed", "finish_reason": None, "prompt_tokens": None,
        "completion_tokens": None, "latency_s": None,
    }
    if generation is not None:
        parsed = parse_pairwise(generation.text, pair.task)
        record.update(text=generation.text, status=parsed.status.value, finish_reason=generation.finish_reason,
                      prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                      latency_s=generation.latency_s, error=error or generation.error)
    return record


def _run_batch(teacher: Critic, batch: list[PreferencePair], templates: dict[str, ParrotTemplate]
               ) -> list[dict[str, Any]]:
    conversations = []
    for pair in batch:
        image_a, image_b, source = pair.open()
        conversations.append(anchored_conversation(pair.task, pair.request, image_a, image_b, source,
                                                   pair.label, templates.get(pair.task.value)))
    try:
        generations = teacher.complete(conversations)
    except Exception as exc:  # noqa: BLE001 - a failed batch is recorded per pair and retried on the next run
        logger.warning("teacher batch failed: %s", exc)
        return [_record(p, None, f"{type(exc).__name__}: {exc}", teacher, c.template_version)
                for p, c in zip(batch, conversations)]
    return [_record(p, g, "", teacher, c.template_version) for p, g, c in zip(batch, generations, conversations)]


def generate_rationales(teacher: Critic, pairs: list[PreferencePair], out_path: str | Path,
                        config: GenerateConfig | None = None,
                        templates: dict[str, ParrotTemplate] | None = None) -> GenerateSummary:
    """Write one anchored rationale per pair to `out_path` (JSONL, appended); skip pairs already done."""
    config = config or GenerateConfig()
    # 1. What is left to do: ids written earlier without an error are done.
    done = {i for i, r in latest_by_id(out_path).items() if not r.get("error")}
    for pair in pairs:
        if pair.task not in teacher.tasks:
            raise ValueError(f"the teacher {teacher.model_id!r} does not serve task {pair.task.value!r}")
    pending = [p for p in pairs if p.pair_id not in done]
    if config.limit:
        pending = pending[:config.limit]
    summary = GenerateSummary(pending=len(pending), skipped_done=len(pairs) - len(pending))
    batches = [pending[i:i + config.batch_size] for i in range(0, len(pending), config.batch_size)]
    templates = templates or {}

    # 2. Batches through the teacher, `concurrency` at a time, each result appended as it arrives.
    start = time.perf_counter()
    with JsonlWriter(out_path) as writer, tqdm(total=len(pending), desc="anchored generation",
                                               disable=not config.progress, unit="pair") as bar, \
            ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        futures = [pool.submit(_run_batch, teacher, b, templates) for b in batches]
        for future in as_completed(futures):
            for record in future.result():
                writer.write(record)
                summary.written += 1
                summary.failed += bool(record["error"])
                summary.prompt_tokens += record["prompt_tokens"] or 0
                summary.completion_tokens += record["completion_tokens"] or 0
                bar.update(1)

    # 3. Cost and throughput.
    summary.seconds = time.perf_counter() - start
    if summary.seconds > 0:
        summary.samples_per_s = summary.written / summary.seconds
        summary.completion_tokens_per_s = summary.completion_tokens / summary.seconds
    logger.info("anchored generation: %s", summary.to_dict())
    return summary
