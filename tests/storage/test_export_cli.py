"""`python -m storage.export` where the app never ran: a specific message, a non-zero exit, and the data
folder left as it was (it used to print an SQLAlchemy traceback and leave an empty database behind)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import export
from storage.db import make_engine, scratch_postgres_database
from storage.migrate import upgrade_to_head
from tests.storage.conftest import postgres_base_url

ROOT = Path(__file__).resolve().parents[2]


def _export(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RR_DATA_DIR": str(data_dir)}
    env.pop("RR_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "storage.export", "--format", "pairs",
                           "--out", str(data_dir.parent / "pairs.jsonl"), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("exists", [False, True], ids=["new folder", "empty folder"])
def test_export_without_a_database_says_so_and_creates_nothing(tmp_path, exists):
    data_dir = tmp_path / "data"
    if exists:
        data_dir.mkdir()
    result = _export(data_dir)
    assert result.returncode == 1
    assert f"no database at {data_dir / 'studio.sqlite3'}" in result.stderr
    assert "run the app first" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["data"] if exists else [])


def test_export_of_a_database_without_tables_is_refused_and_left_alone(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "studio.sqlite3").write_bytes(b"")
    assert export.main(["--format", "pairs", "--out", str(tmp_path / "pairs.jsonl"),
                        "--database-url", f"sqlite:///{data_dir / 'studio.sqlite3'}"]) == 1
    assert (data_dir / "studio.sqlite3").read_bytes() == b""
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data", "studio.sqlite3"]


def test_export_of_a_migrated_empty_database_still_works(tmp_path):
    url = f"sqlite:///{tmp_path / 'studio.sqlite3'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    out = tmp_path / "pairs.jsonl"
    assert export.main(["--format", "pairs", "--out", str(out), "--database-url", url,
                        "--images-dir", str(tmp_path / "images")]) == 0
    assert out.read_text() == ""


@pytest.mark.postgres
def test_export_of_an_unmigrated_postgres_database_is_refused(tmp_path, caplog):
    with scratch_postgres_database(postgres_base_url(), "rr_export_cli") as url:
        code = export.main(["--format", "pairs", "--out", str(tmp_path / "pairs.jsonl"),
                            "--database-url", url])
    assert code == 1
    assert "has no studio tables" in caplog.text and "run the app first" in caplog.text
    assert not (tmp_path / "pairs.jsonl").exists()
