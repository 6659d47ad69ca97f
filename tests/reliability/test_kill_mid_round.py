"""SIGKILL mid-round through the services: the database stays intact, every acknowledged round is
kept with its image and critique, and what the killed round left (at most its image files) is
what storage.gc collects, nothing else."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, text

from storage.db import make_engine, make_session_factory
from storage.gc import collect_garbage
from storage.images import ImageStore
from storage.models import CritiqueRow, CandidateRow, SessionRow

REPO_ROOT = Path(__file__).resolve().parents[2]

RUNNER = """
import sys
from pathlib import Path
from tests.studio.conftest import ScriptedModels, make_services

models = ScriptedModels()
models.critic_double.delay_s = 0.15
services = make_services(Path(sys.argv[1]), models)
for view in services.run_loop(None, "a lighthouse at night", {"rounds": 40, "candidates": 2, "stop_threshold": None}):
    if view.status.endswith(" done."):
        print("stored", len(view.rounds), flush=True)
"""


def kill_mid_round(root: Path, after_rounds: int) -> int:
    """Run a long loop in a child and SIGKILL it while the round after `after_rounds` is in flight;
    returns how many rounds the child acknowledged as stored."""
    child = subprocess.Popen([sys.executable, "-c", RUNNER, str(root)], stdout=subprocess.PIPE, text=True,
                             cwd=REPO_ROOT)
    acknowledged = 0
    for line in child.stdout:
        acknowledged = int(line.split()[1])
        if acknowledged >= after_rounds:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    return acknowledged


def check_after_kill(root: Path, acknowledged: int) -> dict[str, int]:
    """Integrity and orphan figures after a kill; asserts what must hold."""
    engine = make_engine(f"sqlite:///{root / 'studio.sqlite3'}")
    factory = make_session_factory(engine)
    store = ImageStore(root / "images")
    with factory() as db:
        assert db.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        sessions = list(db.scalars(select(SessionRow)))
        rounds = list(db.scalars(select(CandidateRow)))
        critiques = list(db.scalars(select(CritiqueRow)))
    assert len(sessions) == 1
    stored_rounds = {r.round_index for r in rounds}
    assert len(stored_rounds) >= acknowledged and len(rounds) == 2 * len(stored_rounds)
    assert all(store.path(r.image_sha256).is_file() for r in rounds)  # no row without its file
    assert {c.candidate_id for c in critiques} == {r.id for r in rounds}  # every image critiqued, none orphaned
    orphans = collect_garbage(factory, store, grace_s=0, dry_run=True)
    assert len(orphans) <= 2  # at most the killed round's two images
    collect_garbage(factory, store, grace_s=0)
    assert all(store.path(r.image_sha256).is_file() for r in rounds)
    assert collect_garbage(factory, store, grace_s=0, dry_run=True) == []
    engine.dispose()
    return {"rounds_acknowledged": acknowledged, "rounds_stored": len(stored_rounds), "orphan_files": len(orphans)}


def test_sigkill_mid_round_keeps_every_acknowledged_round(tmp_path):
    acknowledged = kill_mid_round(tmp_path, after_rounds=3)
    check_after_kill(tmp_path, acknowledged)
