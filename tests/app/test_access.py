"""Users and access with auth on: a user reaches only their own sessions through every endpoint;
the Annotate and export views need the annotator or admin role; runs per user are limited."""

from __future__ import annotations


import pytest
from gradio_client import Client
from sqlalchemy import select

from storage.models import PairJudgement, CandidateRow, SessionRow
from studio.users import AuthSettings
from tests.app.conftest import ScriptedModels, launched, make_service

AUTH = "alice:pa:designer,bob:pb:designer,carol:pc:annotator"


@pytest.fixture(scope="module")
def app_url(module_dir):
    service = make_service(module_dir, ScriptedModels(), auth=AuthSettings.parse(AUTH))
    with launched(service) as url:
        yield url, service


@pytest.fixture(scope="module")
def alice_session(app_url):
    url, _ = app_url
    alice = Client(url, auth=("alice", "pa"), verbose=False)
    result = alice.predict(prompt="alice's private castle", rounds=2, steps=1, stop_threshold=0,
                           api_name="/run_loop")
    candidate_ids = [r["candidates"][0]["candidate_id"] for r in result["rounds"]]
    return result["session_id"], candidate_ids


def test_sessions_are_tied_to_the_signed_in_user(app_url, alice_session):
    url, service = app_url
    session_id, _ = alice_session
    with service.sessions() as db:
        assert db.get(SessionRow, session_id).owner_id == "alice"
    alice = Client(url, auth=("alice", "pa"), verbose=False)
    assert [s["id"] for s in alice.predict(api_name="/sessions")] == [session_id]


@pytest.mark.parametrize("api_name, kwargs", [
    ("/session", {"session_id": "{sid}"}),
    ("/refine_round", {"session_id": "{sid}", "prompt": "hijacked"}),
    ("/delete_session", {"session_id": "{sid}"}),
    ("/keep", {"candidate_id": "{rid}"}),
    ("/pick_pair", {"candidate_a": "{rid}", "candidate_b": "{rid2}", "preference": "A"}),
    ("/annotate", {"critique_id": 1, "verdicts": {"text_faithfulness": {"verdict": "reject"}}}),
    ("/annotation_queue", {}),
    ("/next_pair", {}),
    ("/export", {"format": "pairs"}),
])
def test_another_designer_cannot_read_or_change_it(app_url, alice_session, api_name, kwargs):
    url, service = app_url
    session_id, candidate_ids = alice_session
    values = {"{sid}": session_id, "{rid}": candidate_ids[0], "{rid2}": candidate_ids[1]}
    kwargs = {k: values.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    bob = Client(url, auth=("bob", "pb"), verbose=False)
    with pytest.raises(Exception, match="no session|no candidate|annotator or admin role"):
        bob.predict(api_name=api_name, **kwargs)
    assert bob.predict(api_name="/sessions") == []
    assert bob.predict(search="castle", api_name="/sessions") == []
    with service.sessions() as db:
        assert db.get(SessionRow, session_id) is not None
        rounds = list(db.scalars(select(CandidateRow).where(CandidateRow.session_id == session_id)))
        assert len(rounds) == 2 and not any(r.chosen for r in rounds)
        assert list(db.scalars(select(PairJudgement))) == []


def test_an_annotator_reviews_but_cannot_change_sessions(app_url, alice_session):
    url, service = app_url
    session_id, candidate_ids = alice_session
    carol = Client(url, auth=("carol", "pc"), verbose=False)
    assert carol.predict(api_name="/annotation_queue")["session_id"] == session_id
    assert carol.predict(api_name="/sessions") == []
    for api_name, kwargs in (("/delete_session", {"session_id": session_id}),
                             ("/refine_round", {"session_id": session_id}),
                             ("/keep", {"candidate_id": candidate_ids[0]})):
        with pytest.raises(Exception, match="another user"):
            carol.predict(api_name=api_name, **kwargs)
    with service.sessions() as db:
        assert db.get(SessionRow, session_id) is not None


def test_wrong_password_is_refused(app_url):
    url, _ = app_url
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=("alice", "wrong"), verbose=False)


