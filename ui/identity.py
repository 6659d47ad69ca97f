"""Who is calling, read from the web layer's login; never from a parameter a caller can set."""

from __future__ import annotations

import gradio as gr

from studio.users import OAUTH_PREFIX


def username_of(request: gr.Request | None) -> str | None:
    """The password-auth user, else the Hugging Face OAuth user, else None (anonymous).

    OAuth users are namespaced as "hf:<name>" so a Hugging Face account can never act as the
    password user of the same name (password usernames cannot contain ":").
    """
    if request is None:
        return None
    if request.username:
        return request.username
    try:
        info = request.session.get("oauth_info") or {}
    except (AttributeError, AssertionError):
        return None
    name = (info.get("userinfo") or {}).get("preferred_username")
    return f"{OAUTH_PREFIX}{name}" if name else None
