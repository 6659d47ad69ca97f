"""What every preference-set reader shares: the pair record, the data source, the report, labels,
rows of JSON / JSONL / Parquet files, image references and the builder that counts what it cannot use.

Each publisher's layout has its own module in this package (one reader per file); a reader only maps
its columns onto `PairBuilder.add`, so labels, images and skip reasons are handled the same way.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from rr_core.critique import Preference
from rr_core.images import load_image, png_bytes, resolve_image_ref
from rr_core.rubric import Task

logger = logging.getLogger(__name__)

ImageData = str | bytes
FORMATS = ("storage", "hpdv2", "pickapic", "imagerewarddb", "genai-bench-t2i", "genai-bench-edit",
           "mmrb2-t2i", "mmrb2-edit", "editreward-bench")
# The benchmark column each format reports under in the paper's table (evaluate.py).
BENCHMARK_OF = {"mmrb2-t2i": "MMRB2-T2I", "mmrb2-edit": "MMRB2-Edit", "editreward-bench": "EditReward-Bench",
                "genai-bench-t2i": "GenAI-Bench-T2I", "genai-bench-edit": "GenAI-Bench-Edit"}

_LABELS = {
    Preference.A: ("a", "image a", "image_a", "left", "leftvote", "left_vote", "a>b", "response_a"),
    Preference.B: ("b", "image b", "image_b", "right", "rightvote", "right_vote", "b>a", "response_b"),
    Preference.TIE: ("tie", "tievote", "tie_vote", "a=b", "b=a", "equal", "same", "draw", "bothbad_vote",
                     "bothbad", "both_bad", "both bad"),
}
_LABEL_OF = {spelling: pref for pref, spellings in _LABELS.items() for spelling in spellings}


def parse_label(value: Any) -> Preference | None:
    """A, B or tie from any published spelling (a/b/left/right/tie, A>B/B>A/A=B, leftvote/...); None if unknown."""
    if isinstance(value, Preference):
        return value
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip().lower()
    if ">" in text or "=" in text:
        text = text.replace(" ", "")
    return _LABEL_OF.get(text)

@dataclass
class PreferencePair:
    """One judged pair, normalized. Images stay as paths or bytes until `open` is called."""

    pair_id: str
    task: Task
    request: str
    image_a: ImageData
    image_b: ImageData
    label: Preference
    source_image: ImageData | None = None
    source: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    dimension_labels: dict[str, Preference] = field(default_factory=dict)
    extra_sources: list[ImageData] = field(default_factory=list)
    """Further source images of an edit that takes several (MMRB2), after `source_image`."""

    @property
    def sources(self) -> list[ImageData]:
        """Every source image, in order (none for t2i)."""
        return ([self.source_image] if self.source_image is not None else []) + list(self.extra_sources)

    def open(self) -> tuple[Image.Image, Image.Image, Image.Image | None]:
        """Image A, image B and the source image (None for t2i) as RGB PIL images; several source
        images are shown side by side in one (see `source_montage`)."""
        sources = [load_image(s) for s in self.sources]
        source = (sources[0] if len(sources) == 1 else source_montage(sources)) if sources else None
        return load_image(self.image_a), load_image(self.image_b), source

    def describe(self) -> dict[str, Any]:
        """The record without image payloads (for logs and result files)."""
        data = asdict(self)
        data["task"] = self.task.value
        data["label"] = self.label.value
        data["dimension_labels"] = {k: v.value for k, v in self.dimension_labels.items()}
        for key in ("image_a", "image_b", "source_image"):
            if isinstance(data[key], bytes):
                data[key] = f"<{len(data[key])} bytes>"
        data["extra_sources"] = [f"<{len(s)} bytes>" if isinstance(s, bytes) else s for s in self.extra_sources]
        return data


MONTAGE_GAP = 16  # white pixels between the source images of a montage


def source_montage(images: list[Image.Image]) -> Image.Image:
    """Several source images as one: scaled to a common height (the tallest, at most 1024 px), left to
    right in order, on white with a gap between them.

    Why: the critique prompt has one source-image slot; the reference sends an MMRB2 edit's sources
    one after another in that slot, which the project's single-slot prompt layout cannot express, so
    the critic sees them together in one picture instead.
    """
    if not images:
        raise ValueError("a montage needs at least one image")
    height = min(max(image.height for image in images), 1024)
    scaled = [image.convert("RGB").resize((max(1, round(image.width * height / image.height)), height))
              for image in images]
    width = sum(image.width for image in scaled) + MONTAGE_GAP * (len(scaled) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for image in scaled:
        canvas.paste(image, (x, 0))
        x += image.width + MONTAGE_GAP
    return canvas


@dataclass
class DataSource:
    """Where to read pairs from.

    format: one of FORMATS. path: a JSON, JSONL or Parquet file, or a folder of them (read in name
    order). image_root: folder that relative image paths are resolved against (default: the data
    file's folder). name: the data source's name in reports (default: the format). limit: read at
    most this many pairs (0: all).
    """

    format: str
    path: str
    image_root: str = ""
    name: str = ""
    limit: int = 0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown data format {self.format!r} (known: {', '.join(FORMATS)})")
        if not self.path:
            raise ValueError("a data source needs a path")
        self.name = self.name or self.format


@dataclass
class ReadReport:
    """What a reader saw: rows read, pairs made, and every row it could not use, by reason."""

    source: str
    rows: int = 0
    pairs: int = 0
    labels: Counter = field(default_factory=Counter)
    unknown_labels: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.rows, "pairs": self.pairs, "labels": dict(self.labels),
                "unknown_labels": dict(self.unknown_labels), "skipped": dict(self.skipped)}

# --- rows and images ---------------------------------------------------------------------------


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl", ".parquet"))
        if not found:
            raise FileNotFoundError(f"no .json, .jsonl or .parquet files under {path}")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    return [path]


def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON list (or {"data": [...]}), JSONL or Parquet file, or of every such file in a folder."""
    for file in _files(Path(path)):
        if file.suffix == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.read_table(file).to_pylist()
        elif file.suffix == ".jsonl":
            with file.open(encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
        else:
            data = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # {"data": [...]}, {"rows": [...]} or MMRB2's {"pairs": [...]}
                data = next((data[key] for key in ("data", "rows", "pairs") if key in data), [data])
            yield from data


def image_data(value: Any, root: Path) -> ImageData | None:
    """A path (resolved against `root`) or bytes from whatever a layout stores; None when absent.

    A list (a content list of one image) stands for its first item; everything else follows
    rr_core.images' one rule for image references, without decoding the pixels yet.
    """
    if isinstance(value, list):
        return image_data(value[0], root) if value else None
    ref = resolve_image_ref(value, "image", base_dir=root)
    if ref is None or isinstance(ref, bytes):
        return ref
    if isinstance(ref, Path):
        return str(ref)
    return png_bytes(load_image(ref))

# --- the builder every reader fills ------------------------------------------------------------


class PairBuilder:
    """Collects pairs and counts what could not be used; shared by every reader."""

    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.root = Path(source.image_root) if source.image_root else (
            Path(source.path) if Path(source.path).is_dir() else Path(source.path).parent)
        self.report = ReadReport(source=source.name)
        self.pairs: list[PreferencePair] = []

    def full(self) -> bool:
        return bool(self.source.limit) and len(self.pairs) >= self.source.limit

    def label(self, raw: Any) -> Preference | None:
        label = parse_label(raw)
        if label is None:
            self.report.unknown_labels[str(raw)] += 1
        return label

    def add(self, pair_id: Any, task: Task, request: Any, a: Any, b: Any, label: Preference | None,
            source_image: Any = None, provenance: dict[str, Any] | None = None,
            dimension_labels: dict[str, Preference] | None = None, extra_sources: list[Any] = ()) -> None:
        if label is None:
            return
        extras = [image_data(value, self.root) for value in extra_sources] if task is Task.EDIT else []
        request = str(request or "").strip()
        image_a, image_b = image_data(a, self.root), image_data(b, self.root)
        source = image_data(source_image, self.root) if task is Task.EDIT else None
        if not request:
            self.report.skipped["no request"] += 1
        elif image_a is None or image_b is None:
            self.report.skipped["missing candidate image"] += 1
        elif task is Task.EDIT and (source is None or any(extra is None for extra in extras)):
            self.report.skipped["missing source image"] += 1
        else:
            self.pairs.append(PreferencePair(str(pair_id), task, request, image_a, image_b, label, source,
                                             self.source.name, provenance or {}, dimension_labels or {},
                                             [extra for extra in extras if extra is not None]))
            self.report.labels[label.value] += 1


def rank_pairs(builder: PairBuilder, group_id: Any, prompt: Any, images: list[Any], ranks: list[Any],
                provenance: dict[str, Any]) -> None:
    """Every pair of images of one prompt; the lower rank wins, equal ranks tie."""
    for i, j in itertools.combinations(range(len(images)), 2):
        try:
            ri, rj = float(ranks[i]), float(ranks[j])
        except (TypeError, ValueError, IndexError):
            builder.report.unknown_labels[f"rank {ranks[i] if i < len(ranks) else None!r}"] += 1
            continue
        label = Preference.TIE if ri == rj else (Preference.A if ri < rj else Preference.B)
        builder.add(f"{group_id}:{i}-{j}", Task.T2I, prompt, images[i], images[j], label,
                    provenance={**provenance, "index_a": i, "index_b": j, "rank_a": ri, "rank_b": rj})
        if builder.full():
            return
