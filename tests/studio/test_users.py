"""Who acts: sign-in settings, roles, and that an account of one kind cannot act as another."""

from __future__ import annotations

import pytest

from storage.errors import NotFound, SessionAccessDenied
from storage.models import Role
from studio.users import LOCAL_USER, AuthSettings, RoleRequired
from tests.studio.conftest import make_services


def test_auth_settings_parse():
    settings = AuthSettings.parse("alice:pw:admin, bob:x")
    assert settings.enabled and settings.role("alice") is Role.ADMIN and settings.role("bob") is Role.DESIGNER
    assert settings.check("bob", "x") and not settings.check("bob", "y") and not settings.check("eve", "x")
    with pytest.raises(ValueError, match="unknown role"):
        AuthSettings.parse("alice:pw:owner")
    with pytest.raises(ValueError, match="user:password"):
        AuthSettings.parse("alice")


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


def test_without_sign_in_everyone_is_the_local_admin(services):
    assert services.user(None) == services.user("whoever") == LOCAL_USER
    assert services.role(None) is Role.ADMIN


def test_a_hugging_face_account_cannot_act_as_the_password_user_of_the_same_name(tmp_path):
    auth = AuthSettings.from_env({"RR_AUTH": "alice:pw:designer", "RR_OAUTH": "1"})
    services = make_services(tmp_path, auth=auth)
    views = list(services.run_loop("alice", "alice's castle", {"rounds": 1, "steps": 1}))
    session_id = views[-1].session_id
    assert [s["id"] for s in services.list_sessions("alice")] == [session_id]
    assert services.list_sessions("hf:alice") == []
    with pytest.raises(NotFound, match="no session"):  # the same answer as for an id that does not exist
        services.open_session("hf:alice", session_id)
    with pytest.raises(SessionAccessDenied, match="Sign in"):
        services.list_sessions(None)
    services.engine.dispose()


def test_review_and_export_need_the_reviewer_role(tmp_path):
    services = make_services(tmp_path, auth=AuthSettings.parse("dana:pw:designer,ann:pw:annotator"))
    for call in (lambda u: services.next_critique(u), lambda u: services.next_pair(u),
                 lambda u: services.export(u, "pairs")):
        with pytest.raises(RoleRequired, match="annotator or admin"):
            call("dana")
        call("ann")
    services.engine.dispose()
