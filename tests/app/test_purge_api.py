"""/hidden_sessions and /purge_session through gradio_client under sign-in: only an admin lists the
sessions owners hid and purges one; a designer and an annotator get one refusal whatever the id (a
hidden one, a visible one, one that never existed), anonymous calls never reach the endpoint, and an
admin's unknown id is "no session"."""

from __future__ import annotations

import pytest
from gradio_client import Client
from sqlalchemy import func, select

from storage.models import Annotation, CandidateRow, CritiqueRow, PairJudgement, SessionRow
from studio.sessions import ADMINS_ONLY
from studio.users import AuthSettings
from tests.app.conftest import ScriptedModels, launched, make_service
from tests.reliability.probes import signed_in, status

AUTH = "alice:pa:designer,carol:pc:annotator,root:pr:admin"
PASSWORDS = {"alice": "pa", "carol": "pc", "root": "pr"}
UNKNOWN = "f" * 32


def hide_a_reviewed_session(service) -> str:
    """alice's two-candidate session that carol annotated and picked in, then deleted by alice (hidden)."""
    view = list(service.run_loop("alice", "a lighthouse", {"rounds": 1, "candidates": 2, "steps": 1}))[-1]
    with service.sessions() as db:
        a, b = db.scalars(select(CandidateRow.id).where(CandidateRow.session_id == view.session_id))
        critique_id = db.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == a))
    service.annotate("carol", critique_id, {"text_faithfulness": {"verdict": "accept"}})
    service.pick_pair("carol", a, b, "A")
    service.delete_session("alice", view.session_id)
    return view.session_id


@pytest.fixture(scope="module")
def app(module_dir):
    service = make_service(module_dir, ScriptedModels(), auth=AuthSettings.parse(AUTH))
    hidden = hide_a_reviewed_session(service)
    visible = list(service.run_loop("alice", "a kite", {"rounds": 1, "steps": 1}))[-1].session_id
    with launched(service) as url:
        yield url, service, hidden, visible


def client(url: str, name: str) -> Client:
    return Client(url, auth=(name, PASSWORDS[name]), verbose=False)


def count(service, model) -> int:
    with service.sessions() as db:
        return db.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("name", ["alice", "carol"])
def test_designers_and_annotators_get_one_refusal_whatever_the_id(app, name):
    url, service, hidden, visible = app
    caller = client(url, name)
    refusals = set()
    for session_id in (hidden, visible, UNKNOWN):
        with pytest.raises(Exception) as refused:
            caller.predict(session_id=session_id, api_name="/purge_session")
        refusals.add(str(refused.value))
    with pytest.raises(Exception) as listing:
        caller.predict(api_name="/hidden_sessions")
    refusals.add(str(listing.value))
    assert len(refusals) == 1 and ADMINS_ONLY in refusals.pop()
    assert count(service, SessionRow) == 2
    assert count(service, Annotation) == 1 and count(service, PairJudgement) == 1


def test_anonymous_calls_never_reach_the_endpoint(app):
    url, service, hidden, _ = app
    with signed_in(url, None) as anonymous:
        for endpoint, data in (("purge_session", [hidden]), ("hidden_sessions", [])):
            assert status(anonymous, "POST", f"gradio_api/call/{endpoint}", json={"data": data}) in (401, 403)
    assert count(service, SessionRow) == 2


def test_an_admin_lists_and_purges_a_hidden_session(app):
    url, service, hidden, visible = app
    root = client(url, "root")
    with pytest.raises(Exception, match="no session"):
        root.predict(session_id=UNKNOWN, api_name="/purge_session")
    (listed,) = root.predict(api_name="/hidden_sessions")
    assert (listed["id"], listed["request"], listed["owner"], listed["annotations"], listed["picks"]) == (
        hidden, "a lighthouse", "alice", 1, 1)
    said = root.predict(session_id=hidden, api_name="/purge_session")
    assert said.startswith("Purged “a lighthouse” (alice's session)") and "by carol" in said
    assert root.predict(api_name="/hidden_sessions") == []
    with service.sessions() as db:
        assert db.get(SessionRow, hidden) is None and db.get(SessionRow, visible) is not None
    assert count(service, Annotation) == 0 and count(service, PairJudgement) == 0
    with pytest.raises(Exception, match="no session"):  # gone: a second purge finds nothing
        root.predict(session_id=hidden, api_name="/purge_session")
