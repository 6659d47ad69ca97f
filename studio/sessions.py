"""A user's stored sessions: list, open, delete, and the counts the Sessions view shows."""

from __future__ import annotations

from typing import Any

from storage import repository as repo
from storage.db import write_transaction
from storage.models import Role
from studio import codec
from studio.context import AppContext
from studio.views import RunView


class SessionLibrary:
    """The caller's own sessions (annotators and admins may open everyone's)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def list_sessions(self, username: str | None, search: str = "", limit: int = 50) -> list[dict[str, Any]]:
        """The caller's own sessions, newest first, with their round counts."""
        user_id = self.ctx.users.user(username)
        with self.ctx.db() as db:
            rows = repo.list_sessions(db, user_id, search=(search or "").strip()[:200] or None, limit=limit)
            counts = repo.round_counts(db, [r.id for r in rows])
            return [{"id": r.id, "title": r.title, "task": r.task, "rounds": counts.get(r.id, 0),
                     "created": r.created_at.strftime("%Y-%m-%d %H:%M")} for r in rows]

    def open_session(self, username: str | None, session_id: str) -> RunView:
        """A stored session as the view a live run shows (the newest critique of each image)."""
        user_id = self.ctx.users.user(username)
        with self.ctx.db() as db:
            row = repo.get_session_for_user(db, session_id, user_id)
            run = codec.read_run(db, self.ctx.store, row, user_id)
        images = sum(len(result.candidates) for result in run.state.rounds)
        return RunView(run, status=f"Session with {images} image(s).")

    def delete_session(self, username: str | None, session_id: str) -> str:
        user_id = self.ctx.users.user(username)
        with write_transaction(self.ctx.db) as db:
            repo.delete_session(db, session_id, user_id)
        return "Session deleted."

    def stats(self, username: str | None) -> dict[str, int]:
        """Counts for the Sessions view: judged pairs and annotated critiques, and the user's own work.
        Reviewers (who see every session) get the global counts; a designer gets the counts of their
        own sessions only, since the global ones would tell them about other users' data."""
        user_id = self.ctx.users.user(username)
        owner = None if self.ctx.users.role(username) in (Role.ANNOTATOR, Role.ADMIN) else user_id
        with self.ctx.db() as db:
            return {"preference_pairs": repo.count_preference_pairs(db, owner_id=owner),
                    "annotated_critiques": repo.count_annotated_critiques(db, owner_id=owner),
                    "my_annotated_critiques": repo.count_annotated_critiques(db, annotator_id=user_id),
                    "my_sessions": repo.count_sessions(db, user_id)}
