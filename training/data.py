"""Preference-pair readers: the project's own export and public preference sets, in one record.

Every reader turns rows of a published layout (JSON, JSONL or Parquet; images as paths, raw bytes,
base64 text or Hugging Face `{"bytes", "path"}` structs) into `PreferencePair`s: pair id, task,
request, source image (edits), image A, image B, label (A, B or tie) and provenance. A row whose
label cannot be read is counted in the `ReadReport` under its spelling, never silently dropped;
rows missing an image or a request are counted under a reason too.

Formats (`DataSource.format`):
- storage: `python -m storage.export --format pairs|parrot` (pair_id, task, request, source_image,
  image_a, image_b, preference, provenance; parrot adds rationales, kept in provenance).
- hpdv2: HPDv2 json: test.json (prompt, image_path list, rank list, lower is better, raw_annotations)
  and train.json (prompt, file_path list, human_preference list, 1 marks the preferred); every pair of
  images of a record becomes a pair; equal ranks tie.
- pickapic: Pick-a-Pic v2 parquet (caption, jpg_0, jpg_1, label_0, label_1 with 0.5/0.5 a tie,
  has_label, ranking_id, image_0_uid, image_1_uid, model_0, model_1, user_id).
- imagerewarddb: ImageRewardDB rows of one image each (prompt_id, prompt, image or image_path,
  rank), pairs from ranks within a prompt_id; or the publisher's grouped records (id, prompt,
  generations, ranking: a list of image paths and their ranks). Lower is better; equal ranks tie.
- genai-bench-t2i: GenAI-Bench image_generation (prompt, left_model, left_image, right_model,
  right_image, vote_type).
- genai-bench-edit: GenAI-Bench image_edition (source_prompt, target_prompt, instruct_prompt,
  source_image, left_output_image, right_output_image, vote_type). vote_type: leftvote, rightvote,
  tievote, bothbad_vote (a tie).
- mmrb2-t2i, mmrb2-edit: Multimodal RewardBench 2: the publisher's built t2i.json / edit.json
  ({"pairs": [...]}: id, prompt_content [["image", path], ["text", ...]], response_a/b with
  model_name and response_content, chosen A|B, human_annotations, prompt_source, prompt_metadata;
  paths relative to the benchmark folder). Edits with several input images and responses that are
  not one image are counted and skipped: the protocol judges one source and one output. Also read:
  flattened rows (pair_id, prompt_text, prompt_images, response_a_images, response_b_images, chosen).
- editreward-bench: EditReward-Bench (configs 2pair, 3pair, 4pair). Released rows hold one comparison
  each: id ("<group>_<n>"), dataset, instruction, source_image, candidate_1, candidate_2, ranking
  ("A>B", "C>A", "B=C"), comparison_type ("AvsC": candidate_1 is A, candidate_2 is C), score_1/2,
  model_1/2; the group and the two positions go into provenance. A row that instead holds a whole
  group (candidate_1..candidate_4 and one ranking such as "B>A=C>D", no comparison_type) is expanded
  into every pair, ties where the ranking puts two candidates level. Other column spellings are
  listed in `_EDITREWARD_COLUMNS`.

Where each layout comes from (checked against public pages in this project's search index):
- confirmed from the dataset card: HPDv2 (ymhao/HPDv2 README: train.json human_preference/prompt/
  file_path, test.json prompt/image_path/rank/raw_annotations; the file_path spelling of train.json
  was missing here before); Pick-a-Pic v2 (yuvalkirstain/pickapic_v2 features); GenAI-Bench
  (image_generation and image_edition features, as above).
- confirmed from the publisher's code, not the card: EditReward-Bench (the card's usage example names
  source_image, candidate_1, candidate_2; TIGER-AI-Lab/EditReward evaluate/inference_3pair_hf.py reads
  id, instruction, ranking, comparison_type, dataset, score_1/2, model_1/2 and groups rows by the id
  prefix); evaluate/inference_4pair_hf.py shows the 4pair rows the same way, one comparison each,
  with letters up to D (comparison_type AvsB ... CvsD, rankings such as "D>B"). The
  whole-group-per-row layout is an extra this reader accepts, not one seen in a release.
- partly confirmed: ImageRewardDB. The grouped records and the direction (lower ranking is better)
  come from the publisher's code (THUDM/ImageReward train/src/rank_pair_dataset.py and test.py,
  which skip equal ranks where this reader keeps them as ties, so that evaluation can report with
  and without ties). The HF loading script declares image, prompt_id, prompt; its per-image `rank`
  column is assumed to run the same way.
- confirmed from the publisher's repository: MMRB2 (facebookresearch/MMRB2: benchmark/edit.json as
  built, benchmark/README.md, and evaluate/compute_scores/compute_accuracy.py, which reads
  pairs[*].id and .chosen). The flattened-row spelling is this project's own.
- assumed: the per-dimension `*_ranking` columns of EditReward-Bench.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
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

    def open(self) -> tuple[Image.Image, Image.Image, Image.Image | None]:
        """Image A, image B and the source image (None for t2i) as RGB PIL images."""
        source = load_image(self.source_image) if self.source_image is not None else None
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
        return data


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


# --- readers -----------------------------------------------------------------------------------


class _Builder:
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
            dimension_labels: dict[str, Preference] | None = None) -> None:
        if label is None:
            return
        request = str(request or "").strip()
        image_a, image_b = image_data(a, self.root), image_data(b, self.root)
        source = image_data(source_image, self.root) if task is Task.EDIT else None
        if not request:
            self.report.skipped["no request"] += 1
        elif image_a is None or image_b is None:
            self.report.skipped["missing candidate image"] += 1
        elif task is Task.EDIT and source is None:
            self.report.skipped["missing source image"] += 1
        else:
            self.pairs.append(PreferencePair(str(pair_id), task, request, image_a, image_b, label, source,
                                             self.source.name, provenance or {}, dimension_labels or {}))
            self.report.labels[label.value] += 1


def _rank_pairs(builder: _Builder, group_id: Any, prompt: Any, images: list[Any], ranks: list[Any],
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


def _read_storage(builder: _Builder, rows: Iterable[dict]) -> None:
    for row in rows:
        builder.report.rows += 1
        provenance = row.get("provenance") or {}
        if isinstance(provenance, str):
            provenance = json.loads(provenance)
        if row.get("rationales") is not None:
            rationales = row["rationales"]
            provenance = {**provenance, "rationales": json.loads(rationales) if isinstance(rationales, str)
                          else rationales}
        provenance.update({k: row[k] for k in ("agreement", "n_judgements") if k in row})
        builder.add(row.get("pair_id"), Task.parse(row.get("task", "t2i")), row.get("request"),
                    row.get("image_a"), row.get("image_b"), builder.label(row.get("preference")),
                    row.get("source_image"), provenance)
        if builder.full():
            return


def _read_hpdv2(builder: _Builder, rows: Iterable[dict]) -> None:
    for index, row in enumerate(rows):
        builder.report.rows += 1
        # test.json names the images image_path, train.json file_path (both confirmed from the dataset card)
        images = list(row.get("image_path") or row.get("file_path") or row.get("image") or [])
        if "rank" in row:
            ranks = list(row["rank"])
        elif "human_preference" in row:
            # One-hot (or vote counts): more votes is better, so rank by the negated count.
            ranks = [-float(v) for v in row["human_preference"]]
        else:
            builder.report.unknown_labels["no rank or human_preference"] += 1
            continue
        provenance = {k: row[k] for k in ("user_hash", "raw_annotations") if k in row}
        _rank_pairs(builder, row.get("id", index), row.get("prompt"), images, ranks, provenance)
        if builder.full():
            return


def _read_pickapic(builder: _Builder, rows: Iterable[dict]) -> None:
    for index, row in enumerate(rows):
        builder.report.rows += 1
        if row.get("has_label") is False:
            builder.report.skipped["has_label is false"] += 1
            continue
        try:
            l0, l1 = float(row["label_0"]), float(row["label_1"])
        except (KeyError, TypeError, ValueError):
            builder.report.unknown_labels[f"label_0={row.get('label_0')!r} label_1={row.get('label_1')!r}"] += 1
            continue
        label = Preference.TIE if l0 == l1 else (Preference.A if l0 > l1 else Preference.B)
        pair_id = row.get("ranking_id") or f"{row.get('image_0_uid', index)}-{row.get('image_1_uid', index)}"
        provenance = {k: row[k] for k in ("model_0", "model_1", "user_id", "image_0_uid", "image_1_uid")
                      if k in row}
        builder.add(pair_id, Task.T2I, row.get("caption"), row.get("jpg_0") or row.get("image_0_url"),
                    row.get("jpg_1") or row.get("image_1_url"), label, provenance=provenance)
        if builder.full():
            return


def _read_imagerewarddb(builder: _Builder, rows: Iterable[dict]) -> None:
    groups: dict[Any, list[dict]] = {}
    for index, row in enumerate(rows):
        builder.report.rows += 1
        if "generations" in row and "ranking" in row:  # the publisher's grouped record
            _rank_pairs(builder, row.get("id", index), row.get("prompt"), list(row["generations"] or []),
                        list(row["ranking"] or []), {"id": row.get("id", index)})
            if builder.full():
                return
            continue
        groups.setdefault(row.get("prompt_id"), []).append(row)
    for prompt_id, group in groups.items():
        images = [r.get("image") if r.get("image") is not None else r.get("image_path") for r in group]
        ranks = [r.get("rank") for r in group]
        _rank_pairs(builder, prompt_id, group[0].get("prompt"), images, ranks, {"prompt_id": prompt_id})
        if builder.full():
            return


def _read_genai(builder: _Builder, rows: Iterable[dict], task: Task) -> None:
    for index, row in enumerate(rows):
        builder.report.rows += 1
        provenance = {k: row[k] for k in ("left_model", "right_model", "tstamp", "judge") if k in row}
        if task is Task.T2I:
            builder.add(row.get("index", index), task, row.get("prompt"), row.get("left_image"),
                        row.get("right_image"), builder.label(row.get("vote_type")), provenance=provenance)
        else:
            provenance.update({k: row[k] for k in ("source_prompt", "target_prompt") if k in row})
            builder.add(row.get("index", index), task, row.get("instruct_prompt"), row.get("left_output_image"),
                        row.get("right_output_image"), builder.label(row.get("vote_type")),
                        row.get("source_image"), provenance)
        if builder.full():
            return


def _content(parts: Any, kind: str) -> list[Any]:
    """The values of one kind ("image", "text") in MMRB2's [[kind, value], ...] content lists."""
    return [value for part_kind, value in (parts or []) if part_kind == kind]


def _read_mmrb2_published(builder: _Builder, row: dict, index: int, task: Task) -> None:
    """One pair of the publisher's t2i.json / edit.json (facebookresearch/MMRB2 benchmark/)."""
    prompt = row["prompt_content"]
    sources = _content(prompt, "image")
    outputs = [_content((row.get(side) or {}).get("response_content"), "image") for side in ("response_a", "response_b")]
    if any(len(images) != 1 for images in outputs):
        builder.report.skipped["response is not exactly one image"] += 1
        return
    if len(sources) != (1 if task is Task.EDIT else 0):
        builder.report.skipped[f"{len(sources)} prompt images (the protocol judges "
                               f"{'one source image' if task is Task.EDIT else 'text-only prompts'})"] += 1
        return
    provenance = {k: row[k] for k in ("prompt_source", "prompt_metadata", "human_annotations") if k in row}
    provenance.update({f"model_{side[-1]}": (row.get(side) or {}).get("model_name") for side in ("response_a", "response_b")})
    builder.add(row.get("id", row.get("pair_id", index)), task, "\n".join(_content(prompt, "text")), outputs[0][0],
                outputs[1][0], builder.label(row.get("chosen", row.get("human_preference"))),
                sources[0] if sources else None, provenance)


def _read_mmrb2(builder: _Builder, rows: Iterable[dict], task: Task) -> None:
    for index, row in enumerate(rows):
        builder.report.rows += 1
        if "prompt_content" in row:
            _read_mmrb2_published(builder, row, index, task)
            if builder.full():
                return
            continue
        provenance = {k: row[k] for k in ("prompt_source", "response_a_model", "response_b_model") if k in row}
        builder.add(row.get("pair_id", index), task, row.get("prompt_text"), row.get("response_a_images"),
                    row.get("response_b_images"), builder.label(row.get("chosen")), row.get("prompt_images"),
                    provenance)
        if builder.full():
            return


# Column spellings of EditReward-Bench rows (first present wins). The released parquet files use
# instruction, source_image, candidate_1, candidate_2, ranking (confirmed, see the module docstring).
_EDITREWARD_COLUMNS = {
    "request": ("instruction", "prompt", "instruct_prompt", "edit_instruction"),
    "source": ("source_image", "input_image", "original_image"),
    "a": ("candidate_1", "candidate1", "image_a", "left_image", "edited_image_1", "output_image_1"),
    "b": ("candidate_2", "candidate2", "image_b", "right_image", "edited_image_2", "output_image_2"),
    "label": ("ranking", "preference", "label", "vote_type", "human_preference"),
}
_CANDIDATE_LETTERS = "ABCD"
# Per-dimension labels when a row carries them (column suffix -> rubric key).
_EDITREWARD_DIMENSIONS = {"instruction_following": "text_faithfulness", "visual_quality": "physical_quality",
                          "quality_aesthetic": "physical_quality", "consistency": "image_faithfulness"}


def _first(row: dict, names: tuple[str, ...]) -> Any:
    return next((row[n] for n in names if n in row and row[n] is not None), None)


def parse_ranking(text: Any) -> dict[str, int] | None:
    """Tier of each candidate letter in a ranking such as "A>B", "C>A", "B>A=C" (0 is best); None if unreadable."""
    if not isinstance(text, str):
        return None
    tiers = [tier.split("=") for tier in text.replace(" ", "").upper().split(">")]
    ranks = {letter: index for index, tier in enumerate(tiers) for letter in tier}
    letters = [letter for tier in tiers for letter in tier]
    if len(letters) < 2 or len(set(letters)) != len(letters) or not set(letters) <= set(_CANDIDATE_LETTERS):
        return None
    return ranks


def _ranked_label(ranks: dict[str, int] | None, left: str, right: str) -> Preference | None:
    if ranks is None or left not in ranks or right not in ranks:
        return None
    if ranks[left] == ranks[right]:
        return Preference.TIE
    return Preference.A if ranks[left] < ranks[right] else Preference.B


def _editreward_common(row: dict) -> tuple[dict[str, Any], dict[str, Preference]]:
    dims = {}
    for column, key in _EDITREWARD_DIMENSIONS.items():
        value = row.get(f"{column}_ranking", row.get(f"{column}_preference"))
        if value is not None and parse_label(value) is not None:
            dims[key] = parse_label(value)
    provenance = {k: row[k] for k in row if isinstance(row[k], (str, int, float)) and "image" not in k
                  and k not in _EDITREWARD_COLUMNS["request"]}
    return provenance, dims


def _read_editreward(builder: _Builder, rows: Iterable[dict]) -> None:
    for index, row in enumerate(rows):
        builder.report.rows += 1
        provenance, dims = _editreward_common(row)
        row_id = row.get("id", row.get("pair_id", index))
        request, source = _first(row, _EDITREWARD_COLUMNS["request"]), _first(row, _EDITREWARD_COLUMNS["source"])
        raw = _first(row, _EDITREWARD_COLUMNS["label"])
        candidates = [row.get(f"candidate_{n}") for n in range(1, len(_CANDIDATE_LETTERS) + 1)]
        if candidates[2] is not None and not row.get("comparison_type"):
            # A whole 3- or 4-candidate group in one row: every pair of its ranking, ties where tiers are equal.
            ranks = parse_ranking(raw)
            present = [i for i, c in enumerate(candidates) if c is not None]
            if ranks is None or any(_CANDIDATE_LETTERS[i] not in ranks for i in present):
                builder.report.unknown_labels[str(raw)] += 1
                continue
            for i, j in itertools.combinations(present, 2):
                left, right = _CANDIDATE_LETTERS[i], _CANDIDATE_LETTERS[j]
                builder.add(f"{row_id}:{left}-{right}", Task.EDIT, request, candidates[i], candidates[j],
                            _ranked_label(ranks, left, right), source,
                            {**provenance, "group": str(row_id), "positions": [left, right],
                             "n_candidates": len(present)}, dims)
                if builder.full():
                    return
            continue
        # One comparison per row (the released layout): candidate_1 and candidate_2 are the two letters of
        # comparison_type ("AvsC": A then C) and the ranking names letters ("C>A"); no comparison_type: A vs B.
        comparison = str(row.get("comparison_type") or "AvsB").upper()
        left, _, right = comparison.partition("VS")
        ranks = parse_ranking(raw)
        if ranks is None:
            label = builder.label(raw)  # other spellings: leftvote, tie, a, ...
        else:
            label = _ranked_label(ranks, left, right)
            if label is None:  # a ranking of letters this row does not compare
                builder.report.unknown_labels[str(raw)] += 1
        group = str(row_id).split("_")[0]
        builder.add(row_id, Task.EDIT, request, _first(row, _EDITREWARD_COLUMNS["a"]),
                    _first(row, _EDITREWARD_COLUMNS["b"]), label, source,
                    {**provenance, "group": group, "positions": [left, right]}, dims)
        if builder.full():
            return


def read_pairs(source: DataSource) -> tuple[list[PreferencePair], ReadReport]:
    """All pairs of one data source, and the report of what was read, counted and skipped."""
    builder = _Builder(source)
    rows = read_rows(source.path)
    fmt = source.format
    if fmt == "storage":
        _read_storage(builder, rows)
    elif fmt == "hpdv2":
        _read_hpdv2(builder, rows)
    elif fmt == "pickapic":
        _read_pickapic(builder, rows)
    elif fmt == "imagerewarddb":
        _read_imagerewarddb(builder, rows)
    elif fmt.startswith("genai-bench"):
        _read_genai(builder, rows, Task.T2I if fmt.endswith("t2i") else Task.EDIT)
    elif fmt.startswith("mmrb2"):
        _read_mmrb2(builder, rows, Task.T2I if fmt.endswith("t2i") else Task.EDIT)
    else:
        _read_editreward(builder, rows)
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
