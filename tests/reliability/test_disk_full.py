"""A full disk (ENOSPC) while a round's images or an export are written: the user reads that the
disk is full, every round stored before it is kept with its files, and nothing partial is left (no
temp file, no image folder, no download link to a file that is not there). Simulated by making
the write's fsync fail with ENOSPC, since a tiny tmpfs cannot be mounted here."""

from __future__ import annotations

import errno
import os

import pytest
from sqlalchemy import select

from rr_core.errors import RRError
from storage.models import CandidateRow, ExportLink, SessionRow
from tests.studio.conftest import make_services

REAL_FSYNC = os.fsync


@pytest.fixture
def services(tmp_path):
    built = make_services(tmp_path)
    yield built
    built.engine.dispose()


def fill_disk_after(monkeypatch, calls: int) -> None:
    """Every os.fsync after the first `calls` raises ENOSPC, as a full disk does."""
    seen = [0]

    def fsync(fd: int) -> None:
        seen[0] += 1
        if seen[0] > calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        REAL_FSYNC(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def test_a_full_disk_mid_run_keeps_the_stored_rounds_and_says_why(services, monkeypatch):
    views = services.run_loop(None, "a lighthouse", {"rounds": 3, "stop_threshold": None})
    for view in views:
        if view.status == "Round 1 done.":
            break
    fill_disk_after(monkeypatch, 0)
    with pytest.raises(RRError, match="disk is full") as caught:
        list(views)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    with services.sessions() as db:
        (session,) = db.scalars(select(SessionRow))
        rounds = list(db.scalars(select(CandidateRow)))
    assert [r.round_index for r in rounds] == [0]
    assert all(services.store.path(r.image_sha256).is_file() for r in rounds)
    assert leftovers(services.store.root) == []
    assert list(services.open_session(None, session.id).run.candidate_ids.values()) == [rounds[0].id]


@pytest.mark.parametrize("portable", [False, True])
def test_a_full_disk_mid_export_says_so_and_leaves_nothing(services, monkeypatch, portable):
    list(services.run_loop(None, "a lighthouse", {"rounds": 2, "stop_threshold": None}))
    (session,) = services.list_sessions(None)
    first, second = sorted(services.open_session(None, session["id"]).run.candidate_ids.values())
    services.pick_pair(None, first, second, "A")
    fill_disk_after(monkeypatch, 1 if portable else 0)  # portable: the records file is written, the zip is not
    with pytest.raises(RRError, match="disk is full") as caught:
        services.export(None, "pairs", portable=portable)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert leftovers(services.exports_dir) == []
    assert sorted(p.name for p in services.exports_dir.iterdir()) == []
    with services.sessions() as db:
        assert list(db.scalars(select(ExportLink))) == []
    assert services.export(None, "pairs")["count"] == 1  # with space again, the same export works
