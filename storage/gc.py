"""Garbage collection: image rows and files no session needs, and what exports leave behind.

    python -m storage.gc [--dry-run] [--database-url URL] [--images-dir DIR] [--exports-dir DIR]
        [--retention-days N] [--grace-s S]

Images. Order matters: unused image rows are deleted and committed first, then files are deleted
only when no committed row names them and they are older than the grace period. A round in flight
has written its file but not committed its row; the grace period keeps that file.

Exports (the app's exports folder): temp files and folders of killed exports (their lock is free;
a running export holds its own, storage/export_files.py), image folders whose export file is gone,
and export files (with their image folders) older than the retention setting; then the download
links (database rows) whose file is gone. The app runs this part at start-up.

Every run reports what it removed, or with --dry-run would remove: files and bytes per kind.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.db import database_url, make_engine, make_session_factory, write_transaction
from storage.export_files import (
    IMAGES_SUFFIX,
    TEMP_SUFFIX,
    entry_bytes,
    entry_files,
    remove_abandoned_temp_entries,
    remove_entry,
)
from storage.images import GC_GRACE_S, ImageStore, default_image_store
from storage.repository import (
    delete_export_links,
    delete_image_rows,
    export_link_files,
    referenced_image_hashes,
    unreferenced_image_rows,
)

log = logging.getLogger(__name__)

RETENTION_ENV = "RR_EXPORT_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30.0


def export_retention_days(env: dict[str, str] | None = None) -> float | None:
    """Days an export file is kept: RR_EXPORT_RETENTION_DAYS (default 30); 0 keeps exports forever."""
    text = (os.environ if env is None else env).get(RETENTION_ENV, "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    try:
        days = float(text)
    except ValueError:
        raise ValueError(f"{RETENTION_ENV} must be a number of days (0 keeps exports forever), got {text!r}") from None
    if days < 0:
        raise ValueError(f"{RETENTION_ENV} cannot be negative, got {text!r}")
    return days or None


@dataclass
class GcReport:
    """What one collection removed (or would remove, on a dry run): per kind, files and bytes."""

    dry_run: bool = False
    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)

    def add(self, kind: str, path: Path, files: int, size: int) -> None:
        self.files[kind] = self.files.get(kind, 0) + files
        self.bytes[kind] = self.bytes.get(kind, 0) + size
        self.paths.append(path)

    @property
    def total_files(self) -> int:
        return sum(self.files.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def lines(self) -> list[str]:
        """One line per kind and a total, as the command prints them."""
        verb = "would free" if self.dry_run else "freed"
        lines = [f"{kind}: {verb} {count} file(s), {self.bytes[kind]} bytes" for kind, count in self.files.items()]
        lines.append(f"total: {verb} {self.total_files} file(s), {self.total_bytes} bytes")
        return lines

    def log(self) -> None:
        for line in self.lines():
            log.info("gc %s", line)


def _export_in_progress(folder: Path, export_name: str) -> bool:
    """Whether an export of this name holds a temp file (it is between renaming its images in and
    renaming its file in)."""
    return any(path.is_file() for path in folder.glob(f".{glob.escape(export_name)}.*{TEMP_SUFFIX}"))


def collect_export_leftovers(exports_dir: str | os.PathLike[str], retention_days: float | None = None, *,
                             dry_run: bool = False, report: GcReport | None = None) -> GcReport:
    """Remove from `exports_dir` what killed exports left (temp files and folders whose lock is free),
    image folders whose export file is gone, and exports older than `retention_days` (None: keep)."""
    report = report or GcReport(dry_run=dry_run)
    folder = Path(exports_dir)
    if not folder.is_dir():
        return report
    for path, files, size in remove_abandoned_temp_entries(folder, dry_run=dry_run):
        report.add("killed exports", path, files, size)
    cutoff = time.time() - retention_days * 86400 if retention_days else None
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() and path.name.endswith(IMAGES_SUFFIX):
            owner = path.name[:-len(IMAGES_SUFFIX)]
            if not (folder / owner).exists() and not _export_in_progress(folder, owner):
                report.add("orphan image folders", path, entry_files(path), entry_bytes(path))
                if not dry_run:
                    remove_entry(path)
            continue
        if cutoff is None or not path.is_file() or path.stat().st_mtime > cutoff:
            continue
        images = path.with_name(path.name + IMAGES_SUFFIX)
        for entry in (path, images):
            if entry.exists():
                report.add("expired exports", entry, entry_files(entry), entry_bytes(entry))
                if not dry_run:
                    remove_entry(entry)
    return report


def forget_dead_export_links(engine_or_factory: Engine | sessionmaker[Session], exports_dir: str | os.PathLike[str],
                             *, dry_run: bool = False) -> int:
    """Delete the download links whose export file is no longer in `exports_dir` (retention removed
    it, or a person did); returns how many were (or, on a dry run, would be) deleted."""
    folder = Path(exports_dir)
    with write_transaction(engine_or_factory) as session:
        dead = [token_hash for token_hash, name in export_link_files(session).items()
                if not (folder / Path(name).name).is_file()]
        if not dry_run:
            delete_export_links(session, dead)
    log.info("export links: %s %d whose file is gone", "would forget" if dry_run else "forgot", len(dead))
    return len(dead)


def collect_garbage(engine_or_factory: Engine | sessionmaker[Session], store: ImageStore, *,
                    grace_s: float = GC_GRACE_S, dry_run: bool = False,
                    report: GcReport | None = None) -> list[str]:
    """Delete unused image rows and unreferenced files older than `grace_s`; returns the deleted (or,
    on a dry run, deletable) hashes and adds the figures to `report`."""
    factory = (make_session_factory(engine_or_factory) if isinstance(engine_or_factory, Engine)
               else engine_or_factory)
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=grace_s)
    with write_transaction(factory) as session:
        unused = unreferenced_image_rows(session, cutoff)
        if not dry_run:
            delete_image_rows(session, unused)
    with factory() as session:
        referenced = referenced_image_hashes(session) - (set(unused) if dry_run else set())
    deleted = []
    for path, size in store.garbage(referenced, grace_s=grace_s):
        if report is not None:
            report.add("images", path, 1, size)
        if not dry_run:
            path.unlink(missing_ok=True)
        if len(path.stem) == 64:
            deleted.append(path.stem)
    log.info("image store gc: %s %d unreferenced files", "would delete" if dry_run else "deleted", len(deleted))
    return deleted


def _same_database(first: str, second: str) -> bool:
    """Whether two URLs name the same database (SQLite paths compared resolved)."""
    one, two = make_url(first), make_url(second)
    if one.get_backend_name() == two.get_backend_name() == "sqlite":
        return bool(one.database) and bool(two.database) and Path(one.database).resolve() == Path(two.database).resolve()
    return one.render_as_string(hide_password=False) == two.render_as_string(hide_password=False)


def main(argv: list[str] | None = None) -> int:
    from rr_core.paths import data_dir

    parser = argparse.ArgumentParser(prog="python -m storage.gc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="report what would be removed, remove nothing")
    parser.add_argument("--database-url", help="default: RR_DATABASE_URL or the SQLite file under RR_DATA_DIR")
    parser.add_argument("--images-dir", type=Path, help="image store root (default: <data dir>/images)")
    parser.add_argument("--exports-dir", type=Path, help="the app's exports (default: <data dir>/exports)")
    parser.add_argument("--retention-days", type=float,
                        help=f"remove exports older than this (default: {RETENTION_ENV} or "
                             f"{DEFAULT_RETENTION_DAYS:g}; 0 keeps them)")
    parser.add_argument("--grace-s", type=float, default=GC_GRACE_S,
                        help="keep unreferenced image files younger than this (rounds in flight)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.retention_days is not None and args.retention_days < 0:
        parser.error("--retention-days cannot be negative")
    retention = export_retention_days() if args.retention_days is None else (args.retention_days or None)
    if (args.database_url and not _same_database(args.database_url, database_url())
            and (args.images_dir is None or args.exports_dir is None)):
        # Files are judged by the database: another database's gc over this folder would delete them all.
        parser.error(f"--database-url names another database than this data folder's ({data_dir()}); give its "
                     "--images-dir and --exports-dir too, so only the files that database owns are judged by it")

    report = GcReport(dry_run=args.dry_run)
    store = ImageStore(args.images_dir) if args.images_dir else default_image_store()
    exports_dir = args.exports_dir or data_dir() / "exports"
    engine = make_engine(args.database_url)
    try:
        collect_garbage(engine, store, grace_s=args.grace_s, dry_run=args.dry_run, report=report)
        collect_export_leftovers(exports_dir, retention, dry_run=args.dry_run, report=report)
        forget_dead_export_links(engine, exports_dir, dry_run=args.dry_run)
    finally:
        engine.dispose()
    report.log()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
