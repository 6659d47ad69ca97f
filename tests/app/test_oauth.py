"""Hugging Face OAuth identities: taken from the signed session, namespaced, scoped like any user."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from studio.users import AuthSettings
from storage.errors import NotFound, SessionAccessDenied
from storage.models import Role
from studio.users import AuthSettings
from tests.app.conftest import ScriptedStudio, make_service
from ui.identity import username_of


def request(username=None, oauth_name=None):
    session = {"oauth_info": {"userinfo": {"preferred_username": oauth_name}}} if oauth_name else {}
    return SimpleNamespace(username=username, session=session)


def test_identity_comes_from_the_login_never_a_parameter():
    assert username_of(request(username="bob")) == "bob"
    assert username_of(request(oauth_name="alice")) == "hf:alice"
    assert username_of(request()) is None
    assert username_of(None) is None


def test_oauth_roles_and_admins():
    auth = AuthSettings.from_env({"RR_AUTH": "alice:pw:annotator", "RR_OAUTH": "1", "RR_OAUTH_ROLE": "designer",
                                  "RR_ADMINS": "root"})
    assert auth.role("hf:carol") is Role.DESIGNER
    assert auth.role("hf:root") is Role.ADMIN
    assert auth.role("alice") is Role.ANNOTATOR
    with pytest.raises(SessionAccessDenied, match="Unknown user"):
        auth.role("mallory")
    with pytest.raises(SessionAccessDenied, match="not enabled"):
        AuthSettings.parse("alice:pw").role("hf:alice")


def test_a_hugging_face_account_cannot_act_as_the_password_user_of_the_same_name(tmp_path):
    auth = AuthSettings.from_env({"RR_AUTH": "alice:pw:designer", "RR_OAUTH": "1"})
    service = make_service(tmp_path, ScriptedStudio(), auth=auth)
    views = list(service.run_loop("alice", "alice's castle", {"rounds": 1, "steps": 1}))
    session_id = views[-1].session_id
    assert [s["id"] for s in service.list_sessions("alice")] == [session_id]
    assert service.list_sessions("hf:alice") == []
    with pytest.raises(NotFound, match="no session"):  # answered as if the id did not exist
        service.open_session("hf:alice", session_id)
    with pytest.raises(SessionAccessDenied, match="Sign in"):
        service.list_sessions(None)
