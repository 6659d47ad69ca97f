"""Export the studio's data for training, one function per format (storage/FORMATS.md describes each).

    python -m storage.export --format {pairs,parrot,sft,sft-trl,dpo,rl-prompts} --out PATH
        [--jsonl|--parquet] [--embed-images|--image-paths] [--since DATE] [--until DATE]
        [--task t2i|edit] [--annotator ID] [--status ok|partial|failed] [--min-agreement 0.75]
        [--include-ties] [--include-invalid]

Every export is written to a temp file beside PATH and renamed over it at the end, so a crash mid-export
leaves the previous file (or none), never half of one (storage/export_files.py). Images are embedded
(PNG bytes: base64 in JSONL, binary in Parquet) or copied into `PATH.images/` and named by paths
relative to PATH's folder, so an export keeps working when moved with its folder; never paths into
the image store. DPO embeds by default (DiffusionDPO's loader reads bytes); the others copy.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from rr_core.critique import Critique
from rr_core.images import prepare_for_critic
from rr_core.parser import render_critique
from rr_core.rubric import Task
from storage.agreement import majority
from storage.db import make_engine, make_session_factory
from storage.errors import ImageNotFound
from storage.export_files import ExportImages, ExportTarget
from storage.images import ImageStore, default_image_store
from storage.models import Annotation, CritiqueRow, PairJudgement, PairSource, CandidateRow, SessionRow, Verdict

log = logging.getLogger(__name__)

FORMATS = ("pairs", "parrot", "sft", "sft-trl", "dpo", "rl-prompts")
EMBEDDED_BY_DEFAULT = frozenset({"dpo"})
"""Formats whose readers need the image bytes in the record (DiffusionDPO opens `jpg_0` as bytes)."""
# Free-form nested fields, stored as JSON text in Parquet so every row has the same column type.
JSON_FIELDS = {"pairs": {"provenance"}, "parrot": {"rationales", "provenance"}}


@dataclass(frozen=True)
class ExportFilters:
    """Which rows an export takes. Dates are compared with the judgement's time (pairs, parrot, dpo),
    the critique's time (sft) or the round's time (rl-prompts); `until` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    task: str | None = None
    annotator_id: str | None = None
    status: str | None = None
    min_agreement: float | None = None
    include_invalid: bool = False
    """Keep reviewed critiques that still hold an invalid score (one written outside 1-4 or not as a
    score, and not corrected by the reviewer): left out by default, since their text would teach a
    model to write such a value."""

    def __post_init__(self) -> None:
        if self.task is not None:
            object.__setattr__(self, "task", Task.parse(self.task).value)
        if self.status is not None and self.status not in ("ok", "partial", "failed"):
            raise ValueError(f"unknown critique status {self.status!r}: expected ok, partial or failed")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError("min_agreement must be between 0 and 1")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))

    def in_window(self, query, column):
        """`query` limited to rows whose `column` (a timestamp) falls in [since, until)."""
        if self.since:
            query = query.where(column >= self.since)
        if self.until:
            query = query.where(column < self.until)
        return query


# --- pairs -------------------------------------------------------------------------------------

@dataclass
class AggregatedPair:
    """All judgements of one unordered pair of candidates, oriented so that A is the lower candidate id."""

    candidate_a: CandidateRow
    candidate_b: CandidateRow
    judgements: list[PairJudgement]
    preference: str
    agreement: float
    votes: dict[str, int]


def _flip(preference: str) -> str:
    return {"A": "B", "B": "A"}.get(preference, preference)


def aggregate_pairs(session: Session, filters: ExportFilters = ExportFilters()) -> list[AggregatedPair]:
    """Judged pairs with their majority preference and agreement (share of judgements that agree with
    it). Human judgements decide when a pair has any; otherwise the derived ones do. A pair whose top
    labels are level (one A, one B) is a tie."""
    query = (select(PairJudgement).join(CandidateRow, PairJudgement.candidate_a_id == CandidateRow.id)
             .join(SessionRow, CandidateRow.session_id == SessionRow.id)
             .options(selectinload(PairJudgement.candidate_a).selectinload(CandidateRow.session),
                      selectinload(PairJudgement.candidate_b)).order_by(PairJudgement.id))
    if filters.task:
        query = query.where(SessionRow.task == filters.task)
    if filters.annotator_id:
        query = query.where(PairJudgement.judge_id == filters.annotator_id)
    query = filters.in_window(query, PairJudgement.created_at)
    groups: dict[tuple[int, int], list[PairJudgement]] = defaultdict(list)
    for judgement in session.scalars(query):
        low, high = sorted((judgement.candidate_a_id, judgement.candidate_b_id))
        groups[(low, high)].append(judgement)
    pairs = []
    for (low, high), judgements in groups.items():
        human = [j for j in judgements if j.source is PairSource.HUMAN]
        deciding = human or judgements
        labels = [j.preference if j.candidate_a_id == low else _flip(j.preference) for j in deciding]
        votes = Counter(labels)
        preference, agreement = majority(labels, level="tie")
        if filters.min_agreement is not None and agreement < filters.min_agreement:
            continue
        first = judgements[0]
        candidate_a, candidate_b = (first.candidate_a, first.candidate_b) if first.candidate_a_id == low else (first.candidate_b, first.candidate_a)
        pairs.append(AggregatedPair(candidate_a, candidate_b, judgements, preference, agreement, dict(votes)))
    return pairs


def _provenance(pair: AggregatedPair) -> dict[str, Any]:
    return {
        "session_id": pair.candidate_a.session_id,
        "candidate_a_id": pair.candidate_a.id,
        "candidate_b_id": pair.candidate_b.id,
        "votes": pair.votes,
        "judgements": [{"id": j.id, "source": j.source.value, "judge_id": j.judge_id, "derived_from": j.derived_from,
                        "preference": j.preference if j.candidate_a_id == pair.candidate_a.id else _flip(j.preference),
                        "created_at": j.created_at.isoformat()} for j in pair.judgements],
        "generator_settings_a": pair.candidate_a.generator_settings,
        "generator_settings_b": pair.candidate_b.generator_settings,
        "seed_a": pair.candidate_a.seed,
        "seed_b": pair.candidate_b.seed,
    }


def _pair_base(pair: AggregatedPair, image: ExportImages) -> dict[str, Any]:
    studio = pair.candidate_a.session
    return {
        "pair_id": f"{pair.candidate_a.id}-{pair.candidate_b.id}",
        "task": studio.task,
        "request": studio.request,
        "prompt_a": pair.candidate_a.used_prompt,
        "prompt_b": pair.candidate_b.used_prompt,
        "source_image": image(pair.candidate_a.source_image_sha256),
        "image_a": image(pair.candidate_a.image_sha256),
        "image_b": image(pair.candidate_b.image_sha256),
        "preference": pair.preference,
        "agreement": pair.agreement,
        "n_judgements": len(pair.judgements),
    }


def export_pairs(session: Session, image: ExportImages,
                 filters: ExportFilters = ExportFilters()) -> Iterator[dict[str, Any]]:
    """Preference pairs: two images of one request, the (majority) preference and its provenance."""
    for pair in aggregate_pairs(session, filters):
        yield {**_pair_base(pair, image), "provenance": _provenance(pair)}


def export_dpo(session: Session, image: ExportImages, filters: ExportFilters = ExportFilters(),
               include_ties: bool = False) -> Iterator[dict[str, Any]]:
    """DiffusionDPO / Pick-a-Pic v2 layout: caption, jpg_0, jpg_1, label_0 (1: image 0 preferred, 0: image
    1, 0.5: tie, only with include_ties) and label_1 = 1 - label_0 (Pick-a-Pic's readers, training.data
    among them, need both). The images are PNG despite the column names (PIL opens both); embedded
    unless the caller asked for paths, since DiffusionDPO's loader opens the column's bytes."""
    for pair in aggregate_pairs(session, filters):
        if pair.preference == "tie" and not include_ties:
            continue
        label_0 = {"A": 1.0, "B": 0.0, "tie": 0.5}[pair.preference]
        yield {"caption": pair.candidate_a.session.request, "jpg_0": image(pair.candidate_a.image_sha256),
               "jpg_1": image(pair.candidate_b.image_sha256),
               "label_0": label_0, "label_1": 1.0 - label_0}


# --- annotated critiques -----------------------------------------------------------------------

@dataclass
class ReviewedCritique:
    """A critique every annotated dimension of which was accepted or corrected (none rejected)."""

    row: CritiqueRow
    critique: Critique
    text: str
    corrected: bool
    annotators: list[str]


def review(row: CritiqueRow, annotator_id: str | None = None,
           include_invalid: bool = False) -> ReviewedCritique | None:
    """Apply the annotations of `row` (the latest per dimension wins; only `annotator_id`'s if given).
    None when it has no annotation, a dimension was rejected, or (unless `include_invalid`) a
    dimension still holds an invalid score after the corrections. Corrected critiques are re-rendered
    with the corrected scores and no reward: the stored reward was made from the critic's scores, and
    storage does not score (a reader that wants one applies `reward_spec(row)` to the scores)."""
    notes = [a for a in row.annotations if annotator_id is None or a.annotator_id == annotator_id]
    if not notes:
        return None
    latest: dict[str, Annotation] = {}
    for note in sorted(notes, key=lambda a: (a.created_at, a.id)):
        latest[note.dimension] = note
    if any(note.verdict is Verdict.REJECT for note in latest.values()):
        return None
    critique = Critique.from_dict({**row.parsed, "raw_text": row.raw_text})
    corrections = {key: note.corrected_score for key, note in latest.items() if note.verdict is Verdict.CORRECT}
    if corrections:
        scores = dict(critique.scores)
        for key, value in corrections.items():
            scores[key] = replace(scores[key], score=value, not_applicable=False, raw_score=f"{value:g}", invalid="")
        critique = replace(critique, scores=scores, reward=None)
        critique = replace(critique, raw_text=render_critique(critique))
    if critique.invalid_keys() and not include_invalid:
        return None
    return ReviewedCritique(row, critique, critique.raw_text, bool(corrections),
                            sorted({n.annotator_id for n in latest.values()}))


def reward_spec(row: CritiqueRow) -> dict[str, Any]:
    """How the critique's reward was made: the stored spec, or for a row older than revision 0003
    (none stored) its recorded reward dimensions with equal weights. The shape is rr_core's
    RewardSpec.to_dict()."""
    if row.reward_spec is not None:
        return dict(row.reward_spec)
    return {"dimensions": list(row.reward_dimensions) or None, "weights": None, "require_all": False}


def _critique_query(filters: ExportFilters) -> Any:
    query = (select(CritiqueRow).join(CandidateRow, CritiqueRow.candidate_id == CandidateRow.id)
             .join(SessionRow, CandidateRow.session_id == SessionRow.id)
             .where(CritiqueRow.annotations.any())
             .options(selectinload(CritiqueRow.annotations),
                      selectinload(CritiqueRow.candidate).selectinload(CandidateRow.session))
             .order_by(CritiqueRow.id))
    if filters.task:
        query = query.where(SessionRow.task == filters.task)
    if filters.status:
        query = query.where(CritiqueRow.status == filters.status)
    query = filters.in_window(query, CritiqueRow.created_at)
    return query


def export_sft(session: Session, image: ExportImages, filters: ExportFilters = ExportFilters(),
               layout: str = "sharegpt") -> Iterator[dict[str, Any]]:
    """Supervised critiques: the critic's system and user turns as stored when the critique was made,
    then the reviewed critique as the assistant turn. The images are the round's (edits: source
    first) prepared for the critic as the prompt had them.

    `layout` "sharegpt" (LLaMA-Factory) keeps each turn a string with `<image>` marks; "trl" makes
    each turn a list of typed parts with an `{"type": "image"}` part where the served prompt had
    the image, since TRL puts every image of a string turn first and leaves the marks as text.
    A critique stored without its prompt (older than revision 0003 and not yet filled in by the
    app) is left out and counted."""
    if layout not in ("sharegpt", "trl"):
        raise ValueError(f"unknown SFT layout {layout!r}: expected sharegpt or trl")
    without_prompt = 0
    for row in session.scalars(_critique_query(filters)):
        reviewed = review(row, filters.annotator_id, filters.include_invalid)
        if reviewed is None:
            continue
        if not row.prompt_messages:
            without_prompt += 1
            continue
        round_ = row.candidate
        pictures = ([image.store.open(round_.source_image_sha256)] if round_.source_image_sha256 else [])
        pictures.append(image.store.open(round_.image_sha256))
        messages = [dict(m) for m in row.prompt_messages] + [{"role": "assistant", "content": reviewed.text}]
        marks = sum(m["content"].count("<image>") for m in messages)
        if marks != len(pictures):
            log.warning("critique %d left out of the SFT export: its prompt has %d image marks for %d images",
                        row.id, marks, len(pictures))
            continue
        images = [image.picture(prepare_for_critic(picture)) for picture in pictures]
        yield {"messages": messages if layout == "sharegpt" else [_typed_parts(m) for m in messages],
               "images": images, "critique_id": row.id, "model_id": row.model_id,
               "template_version": row.template_version,
               "constrained": bool(row.constrained), "corrected": reviewed.corrected}
    if without_prompt:
        log.warning("%d reviewed critique(s) left out of the SFT export: stored before critic prompts were "
                    "kept; start the app once (it fills them in), then export again", without_prompt)


def _typed_parts(message: dict[str, str]) -> dict[str, Any]:
    """A sharegpt turn as TRL's typed content: text parts, and an image part at each `<image>` mark."""
    content: list[dict[str, str]] = []
    for index, piece in enumerate(message["content"].split("<image>")):
        if index:
            content.append({"type": "image"})
        if piece:
            content.append({"type": "text", "text": piece})
    return {"role": message["role"], "content": content}


def export_parrot(session: Session, image: ExportImages,
                  filters: ExportFilters = ExportFilters()) -> Iterator[dict[str, Any]]:
    """PARROT input: the request, both candidates, the human preference, and the reviewed critiques of
    each candidate as rationale supervision (possibly none). Only pairs with a human judgement."""
    for pair in aggregate_pairs(session, filters):
        if not any(j.source is PairSource.HUMAN for j in pair.judgements):
            continue
        rationales: dict[str, list[dict[str, Any]]] = {}
        for side, round_ in (("A", pair.candidate_a), ("B", pair.candidate_b)):
            rationales[side] = []
            for row in round_.critiques:
                if filters.status and row.status != filters.status:
                    continue
                reviewed = review(row, filters.annotator_id, filters.include_invalid)
                if reviewed is None:
                    continue
                parsed = reviewed.critique.to_dict()
                parsed.pop("raw_text")
                rationales[side].append({"critique_id": row.id, "model_id": row.model_id,
                                         "template_version": row.template_version,
                                         "reward_spec": reward_spec(row),
                                         "constrained": bool(row.constrained), "text": reviewed.text,
                                         "critique": parsed, "corrected": reviewed.corrected,
                                         "annotators": reviewed.annotators})
        yield {**_pair_base(pair, image), "rationales": rationales, "provenance": _provenance(pair)}


def export_rl_prompts(session: Session, image: ExportImages,
                      filters: ExportFilters = ExportFilters()) -> Iterator[dict[str, Any]]:
    """Distinct requests (with the source image for edits) for RL rollouts."""
    query = (select(SessionRow.task, CandidateRow.request, CandidateRow.source_image_sha256)
             .join(SessionRow, CandidateRow.session_id == SessionRow.id)
             .group_by(SessionRow.task, CandidateRow.request, CandidateRow.source_image_sha256)
             .order_by(SessionRow.task, CandidateRow.request, CandidateRow.source_image_sha256))
    if filters.task:
        query = query.where(SessionRow.task == filters.task)
    query = filters.in_window(query, CandidateRow.created_at)
    for task, prompt, source in session.execute(query):
        yield {"prompt": prompt, "task": task, "source_image": image(source)}


# --- writing -----------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def write_jsonl(records: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write records as JSON lines (bytes as base64) to `path` (an ExportTarget's temp file); returns
    the record count."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(_jsonable(record), ensure_ascii=False) + "\n")
            count += 1
    return count


def write_parquet(records: Iterable[dict[str, Any]], path: str | os.PathLike[str],
                  json_fields: set[str] = frozenset()) -> int:
    """Write records as one Parquet table to `path`; `json_fields` are stored as JSON text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{k: json.dumps(_jsonable(v), ensure_ascii=False) if k in json_fields else v for k, v in r.items()}
            for r in records]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return len(rows)


def export_to_file(session: Session, store: ImageStore, fmt: str, out: str | os.PathLike[str], *,
                   parquet: bool = False, embed_images: bool | None = None,
                   filters: ExportFilters = ExportFilters(), include_ties: bool = False) -> int:
    """Run one exporter and write its records to `out`; returns the record count. `embed_images`
    None takes the format's default (embedded for dpo, else copied to `<out>.images/` and named
    relative to `out`'s folder)."""
    producers: dict[str, Callable[[ExportImages], Iterable[dict[str, Any]]]] = {
        "pairs": lambda image: export_pairs(session, image, filters),
        "parrot": lambda image: export_parrot(session, image, filters),
        "sft": lambda image: export_sft(session, image, filters),
        "sft-trl": lambda image: export_sft(session, image, filters, layout="trl"),
        "dpo": lambda image: export_dpo(session, image, filters, include_ties),
        "rl-prompts": lambda image: export_rl_prompts(session, image, filters),
    }
    if fmt not in producers:
        raise ValueError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    embed = fmt in EMBEDDED_BY_DEFAULT if embed_images is None else embed_images
    with ExportTarget(out) as target:
        records = producers[fmt](target.images(store, embed))
        if parquet:
            count = write_parquet(records, target.temp_path, JSON_FIELDS.get(fmt, set()))
        else:
            count = write_jsonl(records, target.temp_path)
        target.commit()
    return count


def _date(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _missing_database(url: str | None) -> str | None:
    """Why there is nothing to export at `url` (default: the app's database), or None when there is.

    Checked before any engine is made: opening a SQLite URL creates the file (and its folder), and an
    export must leave a data folder as it found it. A SQLite file is read in read-only mode.
    """
    import sqlite3
    from contextlib import closing

    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from storage.db import database_url

    parsed = make_url(url or database_url())
    hint = "run the app first (python app.py creates and migrates it) or pass --database-url"
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return None
        path = Path(database)
        if not path.is_file():
            return f"no database at {path}: {hint}"
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
                found = connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'candidates'").fetchone()
        except sqlite3.DatabaseError as exc:
            return f"{path} is not a studio database ({exc}): {hint}"
        return None if found else f"the database at {path} has no studio tables: {hint}"
    shown = parsed.render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        found = inspect(engine).has_table("candidates")
    except OperationalError as exc:
        return f"cannot open the database at {shown} ({exc.orig}): {hint}"
    finally:
        engine.dispose()
    return None if found else f"the database at {shown} has no studio tables: {hint}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, type=Path)
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--jsonl", action="store_true", help="JSON lines (default unless --out ends in .parquet)")
    kind.add_argument("--parquet", action="store_true")
    images = parser.add_mutually_exclusive_group()
    images.add_argument("--embed-images", action="store_true", default=None,
                        help="PNG bytes in the records (the default for dpo)")
    images.add_argument("--image-paths", dest="embed_images", action="store_false", default=None,
                        help="copy images to OUT.images/ and give paths relative to OUT (the default "
                             "for every format but dpo)")
    parser.add_argument("--since", type=_date, help="ISO date or time, inclusive (UTC unless given)")
    parser.add_argument("--until", type=_date, help="ISO date or time, exclusive")
    parser.add_argument("--task", choices=("t2i", "edit"))
    parser.add_argument("--annotator", help="only this user's annotations / pair judgements")
    parser.add_argument("--status", choices=("ok", "partial", "failed"), help="critique parse status")
    parser.add_argument("--min-agreement", type=float, help="minimum annotator agreement on a pair, 0-1")
    parser.add_argument("--include-ties", action="store_true", help="dpo: keep ties with label_0 = 0.5")
    parser.add_argument("--include-invalid", action="store_true",
                        help="sft, parrot: keep reviewed critiques that still hold an invalid score")
    parser.add_argument("--database-url", help="default: RR_DATABASE_URL or the SQLite file under RR_DATA_DIR")
    parser.add_argument("--images-dir", type=Path, help="image store root (default: <data dir>/images)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    filters = ExportFilters(since=args.since, until=args.until, task=args.task, annotator_id=args.annotator,
                            status=args.status, min_agreement=args.min_agreement,
                            include_invalid=args.include_invalid)
    parquet = args.parquet or (not args.jsonl and args.out.suffix == ".parquet")
    missing = _missing_database(args.database_url)
    if missing:
        log.error("error: %s", missing)
        return 1
    store = ImageStore(args.images_dir) if args.images_dir else default_image_store()
    engine = make_engine(args.database_url)
    try:
        with make_session_factory(engine)() as session:
            count = export_to_file(session, store, args.format, args.out, parquet=parquet,
                                   embed_images=args.embed_images, filters=filters,
                                   include_ties=args.include_ties)
    except ImageNotFound as exc:
        # Most often a --database-url of another data folder read with this one's image store.
        log.error("error: the image store at %s: %s that the database names; point --images-dir (or "
                  "RR_DATA_DIR) at this database's image store (the app keeps it at <data folder>/images)",
                  store.root, exc)
        return 1
    finally:
        engine.dispose()
    log.info("wrote %d %s records to %s", count, args.format, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
