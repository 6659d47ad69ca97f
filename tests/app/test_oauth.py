"""Hugging Face OAuth identities as the web layer reads them from the signed session (roles and
isolation of OAuth users are tested in tests/studio/test_users.py)."""

from __future__ import annotations

from types import SimpleNamespace

from ui.identity import username_of


def request(username=None, oauth_name=None):
    session = {"oauth_info": {"userinfo": {"preferred_username": oauth_name}}} if oauth_name else {}
    return SimpleNamespace(username=username, session=session)


def test_identity_comes_from_the_login_never_a_parameter():
    assert username_of(request(username="bob")) == "bob"
    assert username_of(request(oauth_name="alice")) == "hf:alice"
    assert username_of(request()) is None
    assert username_of(None) is None


