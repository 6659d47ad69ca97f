"""Deleting a session removes what no one else needs, keeps other users' training data (the session is
hidden from its owner instead), and only an admin's purge removes that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.errors import NotFound
from storage.models import Annotation, Image, PairJudgement, CandidateRow, SessionRow
from studio.users import AuthSettings, RoleRequired
from tests.studio.conftest import make_services

AUTH = "alice:pa:designer,carol:pc:annotator,root:pr:admin"


@pytest.fixture
def services(tmp_path):
    built = make_services(tmp_path, auth=AuthSettings.parse(AUTH))
    yield built
    built.engine.dispose()


def _run(services, prompt: str, seed: int = 0) -> tuple[str, list[str]]:
    """A two-candidate session; returns its id and its images' hashes."""
    view = list(services.run_loop("alice", prompt, {"rounds": 1, "candidates": 2, "seed": seed}))[-1]
    with services.sessions() as db:
        hashes = list(db.scalars(select(CandidateRow.image_sha256).where(CandidateRow.session_id == view.session_id)))
    return view.session_id, hashes


def _count(services, model, *where) -> int:
    with services.sessions() as db:
        return db.scalar(select(func.count()).select_from(model).where(*where))


def test_deleting_removes_rows_and_the_files_no_other_session_uses(services):
    session_id, hashes = _run(services, "a kite")
    other_id, other_hashes = _run(services, "a kite", seed=1)  # seed 1 paints what candidate 1 above did
    shared = set(hashes) & set(other_hashes)
    only_mine = set(hashes) - shared
    assert shared and only_mine

    assert services.delete_session("alice", session_id) == "Session deleted."
    assert _count(services, SessionRow, SessionRow.id == session_id) == 0
    assert _count(services, CandidateRow, CandidateRow.session_id == session_id) == 0
    assert _count(services, Image, Image.sha256.in_(only_mine)) == 0
    assert not any(services.store.exists(sha) for sha in only_mine)
    assert all(services.store.exists(sha) for sha in shared)  # the other session still shows them
    assert _count(services, Image, Image.sha256.in_(shared)) == len(shared)
    assert services.open_session("alice", other_id).session_id == other_id


def test_a_session_others_reviewed_is_hidden_not_purged(services):
    session_id, hashes = _run(services, "a lighthouse")
    item = services.next_critique("carol")
    services.annotate("carol", item["critique_id"], {"text_faithfulness": {"verdict": "accept"}})
    pair = services.next_pair("carol")
    services.pick_pair("carol", pair["candidate_a"], pair["candidate_b"], "B")

    assert "kept for training" in services.delete_session("alice", session_id)
    assert services.list_sessions("alice") == []
    assert services.stats("alice")["my_sessions"] == 0
    with pytest.raises(NotFound, match="no session"):
        services.open_session("alice", session_id)
    with pytest.raises(NotFound):
        services.delete_session("alice", session_id)
    assert _count(services, Annotation) == 1 and _count(services, PairJudgement) == 1
    assert all(services.store.exists(sha) for sha in hashes)
    sft = services.export("carol", "sft")
    assert sft["count"] == 1
    record = json.loads(Path(sft["file"]).read_text().splitlines()[0])
    assert record["critique_id"] == item["critique_id"]

    with pytest.raises(RoleRequired, match="admin"):
        services.purge_session("carol", session_id)
    with pytest.raises(RoleRequired, match="admin"):
        services.purge_session("alice", session_id)
    assert services.purge_session("root", session_id).startswith("Purged “a lighthouse”")
    assert _count(services, SessionRow) == 0 and _count(services, Annotation) == 0
    assert _count(services, PairJudgement) == 0 and _count(services, Image) == 0
    assert not any(services.store.exists(sha) for sha in hashes)


def test_the_owners_own_reviews_do_not_keep_a_session(services):
    session_id, hashes = _run(services, "a boat")
    with services.sessions() as db:
        candidate_ids = list(db.scalars(select(CandidateRow.id).where(CandidateRow.session_id == session_id)))
    from storage import repository as repo
    from storage.db import write_transaction

    with write_transaction(services.sessions) as db:  # a designer's own pick on their own images
        repo.add_pair_judgement(db, candidate_a_id=candidate_ids[0], candidate_b_id=candidate_ids[1], preference="A",
                                judge_id="alice")
    assert services.delete_session("alice", session_id) == "Session deleted."
    assert _count(services, PairJudgement) == 0
    assert not any(services.store.exists(sha) for sha in hashes)
