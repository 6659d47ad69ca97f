"""Deleting a session removes what no one else needs, keeps other users' training data (the session is
hidden from its owner instead), and only an admin's purge removes that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.errors import NotFound
from storage.models import Annotation, Image, PairJudgement, CandidateRow, SessionRow
from studio.users import RoleRequired
from tests.studio.conftest import alices_session, count_rows


@pytest.fixture
def services(team_services):
    """Every test here runs under sign-in (tests.studio.conftest.TEAM_AUTH)."""
    return team_services


def test_deleting_removes_rows_and_the_files_no_other_session_uses(services):
    session_id, hashes = alices_session(services, "a kite")
    other_id, other_hashes = alices_session(services, "a kite", seed=1)  # seed 1 paints what candidate 1 above did
    shared = set(hashes) & set(other_hashes)
    only_mine = set(hashes) - shared
    assert shared and only_mine

    assert services.delete_session("alice", session_id) == "Session deleted."
    assert count_rows(services, SessionRow, SessionRow.id == session_id) == 0
    assert count_rows(services, CandidateRow, CandidateRow.session_id == session_id) == 0
    assert count_rows(services, Image, Image.sha256.in_(only_mine)) == 0
    assert not any(services.store.exists(sha) for sha in only_mine)
    assert all(services.store.exists(sha) for sha in shared)  # the other session still shows them
    assert count_rows(services, Image, Image.sha256.in_(shared)) == len(shared)
    assert services.open_session("alice", other_id).session_id == other_id


def test_a_session_others_reviewed_is_hidden_not_purged(services):
    session_id, hashes = alices_session(services, "a lighthouse")
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
    assert count_rows(services, Annotation) == 1 and count_rows(services, PairJudgement) == 1
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
    assert count_rows(services, SessionRow) == 0 and count_rows(services, Annotation) == 0
    assert count_rows(services, PairJudgement) == 0 and count_rows(services, Image) == 0
    assert not any(services.store.exists(sha) for sha in hashes)


def test_the_owners_own_reviews_do_not_keep_a_session(services):
    session_id, hashes = alices_session(services, "a boat")
    with services.sessions() as db:
        candidate_ids = list(db.scalars(select(CandidateRow.id).where(CandidateRow.session_id == session_id)))
    from storage import repository as repo
    from storage.db import write_transaction

    with write_transaction(services.sessions) as db:  # a designer's own pick on their own images
        repo.add_pair_judgement(db, candidate_a_id=candidate_ids[0], candidate_b_id=candidate_ids[1], preference="A",
                                judge_id="alice")
    assert services.delete_session("alice", session_id) == "Session deleted."
    assert count_rows(services, PairJudgement) == 0
    assert not any(services.store.exists(sha) for sha in hashes)
