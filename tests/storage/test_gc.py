"""What exports leave behind is collected: a SIGKILLed export's temp file and half-filled image folder,
image folders whose export is gone, and exports past their retention; a running export is left alone.
`python -m storage.gc` reports the files and bytes it freed (or, with --dry-run, would free)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from storage.db import make_engine
from storage.gc import collect_export_leftovers, export_retention_days
from storage.images import ImageStore
from storage.migrate import upgrade_to_head

REPO = Path(__file__).resolve().parents[2]

# An export that has written one record and copied one image, then hangs until it is killed.
HANGING_EXPORT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from storage import export

    def hanging(session, image, filters):
        yield {"image": image(sys.argv[1])}
        Path(sys.argv[2]).write_text("started")
        time.sleep(600)
        yield {}

    export.export_pairs = hanging
    export.main(["--format", "pairs", "--out", sys.argv[3], "--database-url", sys.argv[4],
                 "--images-dir", sys.argv[5]])
""")


@pytest.fixture
def setting(tmp_path):
    url = f"sqlite:///{tmp_path / 'studio.sqlite3'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    store = ImageStore(tmp_path / "images")
    exports = tmp_path / "exports"
    exports.mkdir()
    return {"url": url, "store": store, "exports": exports, "tmp": tmp_path}


def _gc(setting, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "storage.gc", "--database-url", setting["url"],
                           "--images-dir", str(setting["store"].root), "--exports-dir", str(setting["exports"]),
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)


def test_a_sigkilled_export_leaves_temp_files_that_gc_removes(setting):
    sha = setting["store"].put(Image.new("RGB", (64, 64), (200, 10, 10))).sha256
    marker = setting["tmp"] / "started"
    out = setting["exports"] / "pairs.jsonl"
    process = subprocess.Popen([sys.executable, "-c", HANGING_EXPORT, sha, str(marker), str(out), setting["url"],
                                str(setting["store"].root)], cwd=REPO)
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert process.poll() is None, "the export died before it started"
            assert time.time() < deadline, "the export did not start"
            time.sleep(0.1)
        temps = sorted(p.name for p in setting["exports"].glob(".*.tmp"))
        assert len(temps) == 2  # the records file and the image folder, both still locked
        running = collect_export_leftovers(setting["exports"], None)
        assert running.total_files == 0  # an export in progress is not garbage
        assert sorted(p.name for p in setting["exports"].glob(".*.tmp")) == temps
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    assert len(list(setting["exports"].glob(".*.tmp"))) == 2  # what the kill left

    dry = _gc(setting, "--dry-run")
    assert "killed exports: would free 2 file(s)" in dry.stdout
    assert len(list(setting["exports"].glob(".*.tmp"))) == 2

    done = _gc(setting)
    image_bytes = setting["store"].path(sha).stat().st_size
    line = next(line for line in done.stdout.splitlines() if line.startswith("gc killed exports"))
    assert "freed 2 file(s)" in line and int(line.split(", ")[1].split()[0]) >= image_bytes
    assert "total: freed" in done.stdout
    assert list(setting["exports"].iterdir()) == []
    assert setting["store"].exists(sha)  # young: within the grace period for rounds in flight


def test_expired_exports_and_orphan_image_folders_are_removed(setting):
    exports = setting["exports"]
    old, fresh = exports / "pairs-old.jsonl", exports / "pairs-new.jsonl"
    for path in (old, fresh):
        path.write_text("{}\n")
        images = path.with_name(path.name + ".images") / "ab"
        images.mkdir(parents=True)
        (images / "x.png").write_bytes(b"\x89PNG" + b"0" * 96)
    orphan = exports / "gone.jsonl.images"
    orphan.mkdir()
    (orphan / "y.png").write_bytes(b"1" * 50)
    long_ago = time.time() - 40 * 86400
    os.utime(old, (long_ago, long_ago))

    dry = collect_export_leftovers(exports, 30, dry_run=True)
    assert dry.files == {"orphan image folders": 1, "expired exports": 2}
    assert dry.bytes == {"orphan image folders": 50, "expired exports": 3 + 100}
    assert old.exists() and orphan.exists()

    report = collect_export_leftovers(exports, 30)
    assert (report.total_files, report.total_bytes) == (3, 153)
    assert sorted(p.name for p in exports.iterdir()) == ["pairs-new.jsonl", "pairs-new.jsonl.images"]
    assert collect_export_leftovers(exports, None).total_files == 0  # retention off keeps everything


def test_retention_setting():
    assert export_retention_days({}) == 30
    assert export_retention_days({"RR_EXPORT_RETENTION_DAYS": "7"}) == 7
    assert export_retention_days({"RR_EXPORT_RETENTION_DAYS": "0"}) is None
    with pytest.raises(ValueError, match="number of days"):
        export_retention_days({"RR_EXPORT_RETENTION_DAYS": "soon"})
    with pytest.raises(ValueError, match="negative"):
        export_retention_days({"RR_EXPORT_RETENTION_DAYS": "-1"})


def test_gc_forgets_download_links_whose_export_is_gone(setting):
    from storage import repository as repo
    from storage.db import make_session_factory, write_transaction

    engine = make_engine(setting["url"])
    factory = make_session_factory(engine)
    kept = setting["exports"] / "pairs-kept.zip"
    kept.write_bytes(b"PK")
    with write_transaction(factory) as db:
        repo.get_or_create_user(db, "ann")
        for token_hash, name in (("a" * 64, "pairs-kept.zip"), ("b" * 64, "pairs-expired.zip")):
            repo.add_export_link(db, token_hash=token_hash, owner_id="ann", file_name=name, fmt="pairs",
                                 record_count=1)
    dry = _gc(setting, "--dry-run")
    assert "export links: would forget 1 whose file is gone" in dry.stdout
    with factory() as db:
        assert len(repo.export_link_files(db)) == 2
    run = _gc(setting)
    assert "export links: forgot 1 whose file is gone" in run.stdout
    with factory() as db:
        assert repo.export_link_files(db) == {"a" * 64: "pairs-kept.zip"}
    engine.dispose()


def test_gc_of_another_database_without_its_folders_deletes_nothing(setting, tmp_path, monkeypatch):
    """`--database-url` naming a database other than this data folder's, without `--images-dir`,
    would judge this folder's images by a database that does not list them, and delete them all."""
    here = tmp_path / "here"
    store = ImageStore(here / "images")
    sha = store.put(Image.new("RGB", (8, 8), (1, 2, 3))).sha256
    old = time.time() - 10 * 86400
    os.utime(store.path(sha), (old, old))
    env = {**os.environ, "RR_DATA_DIR": str(here)}
    env.pop("RR_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "storage.gc", "--database-url", setting["url"]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--images-dir" in done.stderr and "--exports-dir" in done.stderr
    assert store.exists(sha)
