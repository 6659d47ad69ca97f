"""Which reader a data source's format uses, and reading one or several sources into pairs."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial

from rr_core.rubric import Task
from training.data.base import DataSource, PairBuilder, PreferencePair, ReadReport, read_rows
from training.data.editreward_bench import read_editreward_bench
from training.data.genai_bench import read_genai_bench
from training.data.hpdv2 import read_hpdv2
from training.data.imagerewarddb import read_imagerewarddb
from training.data.mmrb2 import read_mmrb2
from training.data.pickapic import read_pickapic
from training.data.storage import read_storage

logger = logging.getLogger(__name__)

Reader = Callable[[PairBuilder, Iterable[dict]], None]
READERS: dict[str, Reader] = {
    "storage": read_storage,
    "hpdv2": read_hpdv2,
    "pickapic": read_pickapic,
    "imagerewarddb": read_imagerewarddb,
    "genai-bench-t2i": partial(read_genai_bench, task=Task.T2I),
    "genai-bench-edit": partial(read_genai_bench, task=Task.EDIT),
    "mmrb2-t2i": partial(read_mmrb2, task=Task.T2I),
    "mmrb2-edit": partial(read_mmrb2, task=Task.EDIT),
    "editreward-bench": read_editreward_bench,
}


def read_pairs(source: DataSource) -> tuple[list[PreferencePair], ReadReport]:
    """All pairs of one data source, and the report of what was read, counted and skipped."""
    builder = PairBuilder(source)
    READERS[source.format](builder, read_rows(source.path))
    builder.report.pairs = len(builder.pairs)
    if builder.report.unknown_labels or builder.report.skipped:
        logger.warning("%s: %d rows, %d pairs; unknown labels %s; skipped %s", source.name, builder.report.rows,
                       builder.report.pairs, dict(builder.report.unknown_labels), dict(builder.report.skipped))
    return builder.pairs, builder.report


def read_all(sources: Iterable[DataSource]) -> tuple[list[PreferencePair], list[ReadReport]]:
    """Pairs of several sources; pair ids are prefixed by the source name so they stay unique."""
    pairs, reports = [], []
    for source in sources:
        found, report = read_pairs(source)
        for pair in found:
            pair.pair_id = f"{source.name}/{pair.pair_id}"
        pairs += found
        reports.append(report)
    ids = Counter(p.pair_id for p in pairs)
    duplicates = [i for i, n in ids.items() if n > 1]
    if duplicates:
        raise ValueError(f"duplicate pair ids {duplicates[:5]}: give the data sources distinct names")
    return pairs, reports
