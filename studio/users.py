"""Who acts: password users with roles, Hugging Face OAuth users on Spaces, and the one local user
when no sign-in is configured.

The web layer authenticates; this module maps a signed-in name to a user row and a role. Who acts is
never a parameter a caller can choose: every job takes the `username` the web layer authenticated.
Password usernames cannot contain ":", and OAuth users are "hf:<name>", so the two kinds of account
never collide.
"""

from __future__ import annotations

import hmac
import os
import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from storage import repository as repo
from storage.db import write_transaction
from storage.errors import SessionAccessDenied
from storage.models import Role

OAUTH_PREFIX = "hf:"


@dataclass
class AuthSettings:
    """Username/password pairs with roles (RR_AUTH="alice:pw:designer,bob:pw:annotator"), and/or
    Hugging Face OAuth on Spaces (users signed in that way get RR_OAUTH_ROLE, default designer;
    RR_ADMINS lists usernames that are admins)."""

    users: dict[str, tuple[str, Role]] = field(default_factory=dict)
    oauth: bool = False
    oauth_role: Role = Role.DESIGNER
    admins: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str, oauth: bool = False) -> AuthSettings:
        """Read "user:password[:role],..."; usernames cannot contain ":" (OAuth users are "hf:<name>")."""
        users = {}
        for entry in filter(None, (part.strip() for part in (text or "").split(","))):
            pieces = entry.split(":")
            if len(pieces) not in (2, 3) or not pieces[0] or not pieces[1]:
                raise ValueError(f"auth entry {entry.split(':')[0]!r} must be user:password[:role]")
            role = pieces[2] if len(pieces) == 3 else Role.DESIGNER.value
            try:
                users[pieces[0]] = (pieces[1], Role(role))
            except ValueError:
                raise ValueError(f"unknown role {role!r} for {pieces[0]!r}: designer, annotator or admin") from None
        return cls(users=users, oauth=oauth)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AuthSettings:
        env = dict(os.environ if env is None else env)
        settings = cls.parse(env.get("RR_AUTH", ""), oauth=oauth_wanted(env))
        settings.oauth_role = Role(env.get("RR_OAUTH_ROLE", Role.DESIGNER.value))
        settings.admins = frozenset(filter(None, env.get("RR_ADMINS", "").split(",")))
        return settings

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.oauth

    def check(self, username: str, password: str) -> bool:
        """Password check for gr.Blocks.launch(auth=...); constant-time comparison."""
        entry = self.users.get(username)
        return entry is not None and hmac.compare_digest(entry[0].encode(), str(password).encode())

    def role(self, username: str) -> Role:
        """The role of a signed-in user: "hf:<name>" for Hugging Face OAuth, else a password user."""
        if username.startswith(OAUTH_PREFIX):
            if not self.oauth:
                raise SessionAccessDenied("Hugging Face sign-in is not enabled on this server.")
            return Role.ADMIN if username[len(OAUTH_PREFIX):] in self.admins else self.oauth_role
        if username not in self.users:
            raise SessionAccessDenied(f"Unknown user {username!r}: sign in again.")
        return Role.ADMIN if username in self.admins else self.users[username][1]


def oauth_wanted(env: dict[str, str]) -> bool:
    """Whether Hugging Face sign-in is on: RR_OAUTH when set (1/true/yes or 0/false/no, anything else
    refused); unset, on exactly when this is a Space with an OAuth app (`hf_oauth: true` in the README
    makes the platform set OAUTH_CLIENT_ID). Why the default: on a first push nobody has set RR_OAUTH
    yet, and without sign-in every visitor of a public Space would be the one local admin."""
    value = env.get("RR_OAUTH", "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    if value:
        raise ValueError(f"RR_OAUTH must be 1 or 0 (true/false, yes/no), got {value!r}")
    return bool(env.get("SPACE_ID") and env.get("OAUTH_CLIENT_ID"))


LOCAL_USER = "local"
"""The one user of a studio without sign-in; an admin."""


class RoleRequired(SessionAccessDenied):
    """The view needs the annotator or admin role."""


class Users:
    """Resolves the signed-in name to a user id and role, creating the user row on first sight."""

    def __init__(self, db: sessionmaker[Session], auth: AuthSettings) -> None:
        self.db = db
        self.auth = auth
        self._known: dict[str, Role] = {}
        self._lock = threading.Lock()

    def user(self, username: str | None) -> str:
        """The acting user's id, created (or its role synced with the settings) on first sight."""
        if not self.auth.enabled:
            user_id, role, name = LOCAL_USER, Role.ADMIN, "Local user"
        else:
            if not username:
                raise SessionAccessDenied("Sign in to use the studio.")
            user_id, role, name = username, self.auth.role(username), username
        if self._known.get(user_id) is not role:
            with write_transaction(self.db) as db:
                row = repo.get_or_create_user(db, user_id, name, role)
                row.role = role
            with self._lock:
                self._known[user_id] = role
        return user_id

    def role(self, username: str | None) -> Role:
        """The acting user's role (after resolving them as `user` does)."""
        return self._known[self.user(username)]

    def reviewer(self, username: str | None) -> str:
        """The acting user's id if they may review (annotator or admin); else RoleRequired."""
        user_id = self.user(username)
        if self._known[user_id] not in (Role.ANNOTATOR, Role.ADMIN):
            raise RoleRequired("This view needs the annotator or admin role.")
        return user_id
