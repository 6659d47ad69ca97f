"""Preference-pair readers: the project's own export and public preference sets, in one record.

Every reader turns rows of a published layout (JSON, JSONL or Parquet; images as paths, raw bytes,
base64 text or Hugging Face `{"bytes", "path"}` structs, told apart by rr_core.images' one reader)
into `PreferencePair`s: pair id, task, request, source image (edits), image A, image B, label (A, B or
tie) and provenance. A row whose label cannot be read is counted in the `ReadReport` under its
spelling, never silently dropped; rows missing an image or a request are counted under a reason too.

One module per publisher, each documenting its layout and where that layout was confirmed:
storage (this project's export), hpdv2, pickapic, imagerewarddb, genai_bench, mmrb2,
editreward_bench; `base` holds what they share and `readers` maps a `DataSource.format` (FORMATS)
to its reader.
"""

from training.data.base import (
    BENCHMARK_OF,
    FORMATS,
    DataSource,
    ImageData,
    PairBuilder,
    PreferencePair,
    ReadReport,
    image_data,
    parse_label,
    read_rows,
)
from training.data.editreward_bench import parse_ranking
from training.data.readers import READERS, read_all, read_pairs

__all__ = ["BENCHMARK_OF", "FORMATS", "READERS", "DataSource", "ImageData", "PairBuilder", "PreferencePair",
           "ReadReport", "image_data", "parse_label", "parse_ranking", "read_all", "read_pairs", "read_rows"]
