"""An admin's purge of a session its owner deleted but others' training data kept (issue 17 item 8):
admins list the hidden sessions with what hangs on each, are told exactly what a purge removes, and
purge it; no one else can list, ask or purge, and their answer never depends on the id."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from storage.errors import NotFound
from storage.models import Annotation, CandidateRow, CritiqueRow, Image, PairJudgement, SessionRow
from studio.users import SessionAccessDenied
from tests.studio.conftest import alices_session, count_rows

UNKNOWN = "f" * 32


@pytest.fixture
def services(team_services):
    """Every test here runs under sign-in (tests.studio.conftest.TEAM_AUTH)."""
    return team_services


@pytest.fixture
def hidden(services):
    """alice's "a lighthouse" (hidden: carol gave two verdicts, dave picked between its images) and
    her visible second "a lighthouse", which shares one of its two images."""
    session_id, hashes = alices_session(services, "a lighthouse")
    other_id, other_hashes = alices_session(services, "a lighthouse", seed=1)  # seed 1 repeats candidate 1 above
    with services.sessions() as db:
        own = list(db.scalars(select(CandidateRow.id).where(CandidateRow.session_id == session_id)))
        critique_id = db.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == own[0]))
    services.annotate("carol", critique_id, {"text_faithfulness": {"verdict": "accept"},
                                             "physical_quality": {"verdict": "reject"}})
    services.pick_pair("dave", own[0], own[1], "B")
    assert "kept for training" in services.delete_session("alice", session_id)
    return session_id, hashes, other_id, other_hashes


def test_admins_see_the_hidden_sessions_with_what_hangs_on_them(services, hidden):
    session_id, *_ = hidden
    (listed,) = services.hidden_sessions("root")
    assert {k: listed[k] for k in ("id", "request", "owner", "annotations", "picks")} == {
        "id": session_id, "request": "a lighthouse", "owner": "alice", "annotations": 2, "picks": 1}
    hidden_at = datetime.strptime(listed["hidden_at"], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - hidden_at) < timedelta(minutes=2)


def test_the_question_says_exactly_what_a_purge_removes(services, hidden):
    session_id, hashes, other_id, other_hashes = hidden
    shared = set(hashes) & set(other_hashes)
    assert len(shared) == 1
    preview = services.purge_preview("root", session_id)
    assert preview == {"id": session_id, "request": "a lighthouse", "owner": "alice",
                       "hidden_at": preview["hidden_at"], "rounds": 1, "images": 2, "critiques": 2,
                       "annotations": 2, "picks": 1, "reviewers": ["carol", "dave"], "freed_images": 1}
    assert preview["hidden_at"] is not None
    assert count_rows(services, SessionRow, SessionRow.id == session_id) == 1  # asking removes nothing

    said = services.purge_session("root", session_id)
    assert said.startswith("Purged") and "a lighthouse" in said and "alice" in said
    for part in ("1 round", "2 images", "2 critiques", "2 annotations", "1 A/B pick", "carol", "dave",
                 "1 image file"):
        assert part in said, (part, said)
    assert services.hidden_sessions("root") == []
    assert count_rows(services, SessionRow, SessionRow.id == session_id) == 0
    assert count_rows(services, CandidateRow, CandidateRow.session_id == session_id) == 0
    assert count_rows(services, CritiqueRow) == 2  # the other session's two
    assert count_rows(services, Annotation) == 0 and count_rows(services, PairJudgement) == 0
    only_here = set(hashes) - shared
    assert count_rows(services, Image, Image.sha256.in_(only_here)) == 0
    assert not any(services.store.exists(sha) for sha in only_here)
    assert all(services.store.exists(sha) for sha in shared)  # the other session still shows it
    assert services.open_session("alice", other_id).session_id == other_id


def test_a_visible_session_is_not_listed_as_hidden(services):
    alices_session(services, "a kite")
    assert services.hidden_sessions("root") == []


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_no_one_else_lists_asks_or_purges_and_the_answer_never_depends_on_the_id(services, hidden, who):
    session_id, _, other_id, _ = hidden
    texts = set()
    for call in (lambda sid: services.purge_session(who, sid), lambda sid: services.purge_preview(who, sid)):
        for sid in (session_id, other_id, UNKNOWN):
            with pytest.raises(SessionAccessDenied) as refused:
                call(sid)
            texts.add(str(refused.value))
    with pytest.raises(SessionAccessDenied) as listing:
        services.hidden_sessions(who)
    texts.add(str(listing.value))
    assert texts == {"Only an admin can see hidden sessions or purge one."}
    assert count_rows(services, SessionRow) == 2 and count_rows(services, Annotation) == 2
    assert count_rows(services, PairJudgement) == 1


def test_anonymous_callers_are_asked_to_sign_in_whatever_the_id(services, hidden):
    session_id, *_ = hidden
    for sid in (session_id, UNKNOWN):
        with pytest.raises(SessionAccessDenied, match="^Sign in to use the studio.$"):
            services.purge_session(None, sid)
    assert count_rows(services, SessionRow) == 2


def test_an_admin_purging_an_unknown_id_is_told_it_is_not_found(services, hidden):
    for call in (services.purge_session, services.purge_preview):
        with pytest.raises(NotFound, match="no session"):
            call("root", UNKNOWN)
    assert count_rows(services, SessionRow) == 2
