"""Crash safety: a writer killed with SIGKILL leaves SQLite intact and every committed round with its image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from storage import repository as repo
from storage.db import make_engine, make_session_factory, write_transaction
from storage.images import ImageStore
from storage.migrate import upgrade_to_head
from storage.models import CandidateRow

REPO_ROOT = Path(__file__).resolve().parents[2]

# The child writes rounds forever, printing each committed candidate id. With SUICIDE_AT=n it kills itself
# while round n's image file is written and its rows are flushed but not committed.
WRITER = textwrap.dedent("""
    import os, signal, sys
    from PIL import Image
    from rr_core.critique import Critique
    from rr_core.rubric import Task
    from storage import repository as repo
    from storage.db import make_engine, make_session_factory, write_transaction
    from storage.images import ImageStore

    url, root, session_id, suicide_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    factory = make_session_factory(make_engine(url))
    store = ImageStore(root)
    i = 0
    while True:
        image = Image.frombytes("RGB", (4, 4), os.urandom(48))
        with write_transaction(factory) as s:
            row = repo.record_candidate(s, store=store, session_id=session_id, owner_id="crash", request=f"p{i}",
                                    image=image, critique=Critique.failure(Task.T2I, "none"), round_index=i)
            if i == suicide_at:
                os.kill(os.getpid(), signal.SIGKILL)
        print(row.id, flush=True)
        i += 1
""")


def _setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    factory = make_session_factory(engine)
    with write_transaction(factory) as s:
        repo.get_or_create_user(s, "crash")
        session_id = repo.create_session(s, owner_id="crash", task="t2i", request="crash").id
    return url, engine, factory, session_id, ImageStore(tmp_path / "images")


def _run_writer(url, store, session_id, suicide_at, kill_after):
    child = subprocess.Popen([sys.executable, "-c", WRITER, url, str(store.root), session_id, str(suicide_at)],
                             stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    committed = []
    for line in child.stdout:
        committed.append(int(line))
        if len(committed) == kill_after:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return committed


def _check_consistent(engine, factory, store, session_id, committed):
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    with factory() as s:
        rows = s.scalars(select(CandidateRow).where(CandidateRow.session_id == session_id).order_by(CandidateRow.id)).all()
    assert set(committed) <= {r.id for r in rows}
    assert len(rows) <= len(committed) + 1  # at most the round in flight when killed
    assert all(store.exists(r.image_sha256) for r in rows)
    assert [r.round_index for r in rows] == list(range(len(rows)))
    return rows


@pytest.mark.parametrize("mode", ["killed-from-outside", "killed-before-commit"])
def test_sigkill_mid_write(tmp_path, mode):
    url, engine, factory, session_id, store = _setup(tmp_path)
    if mode == "killed-from-outside":
        committed = _run_writer(url, store, session_id, suicide_at=-1, kill_after=40)
    else:
        committed = _run_writer(url, store, session_id, suicide_at=25, kill_after=-1)
        assert len(committed) == 25
    rows = _check_consistent(engine, factory, store, session_id, committed)
    if mode == "killed-before-commit":
        assert len(rows) == 25
        orphans = set(store.iter_hashes()) - {r.image_sha256 for r in rows}
        assert len(orphans) == 1  # the in-flight round's file: left for the garbage collector
    with write_transaction(factory) as s:  # the database takes writes again after the crash
        after = repo.record_candidate(s, store=store, session_id=session_id, owner_id="crash", request="after",
                                  image=Image.new("RGB", (4, 4), "red"), critique=None, round_index=len(rows)).id
    _check_consistent(engine, factory, store, session_id, committed + [after])
    engine.dispose()
