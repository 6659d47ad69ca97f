"""A user's stored sessions: list, open, delete (or hide, or an admin's purge), and the counts the
Sessions view shows."""

from __future__ import annotations

import logging
import time
from typing import Any

from storage import repository as repo
from storage.db import write_transaction
from storage.models import Role
from studio import codec
from studio.context import AppContext
from studio.users import RoleRequired
from studio.views import RunView

log = logging.getLogger(__name__)


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
            settings = dict(row.settings or {})
        images = sum(len(result.candidates) for result in run.state.rounds)
        return RunView(run, status=f"Session with {images} image(s).", settings=settings)

    def delete_session(self, username: str | None, session_id: str) -> str:
        """Delete one of the caller's sessions with what no one else needs: its rows, and the image
        rows and files no other session uses. When other users' annotations or A/B picks hang on it,
        it is hidden from the caller instead, so their training data stays (an admin can purge it)."""
        user_id = self.ctx.users.user(username)
        started = time.time()
        with write_transaction(self.ctx.db) as db:
            removal = repo.delete_session(db, session_id, user_id)
        if removal.hidden:
            log.info("session %s hidden from its owner: other users' annotations or picks are on it", session_id)
            return "Session removed from your list; other users' reviews of it are kept for training."
        self._remove_files(session_id, removal.freed_images, started)
        return "Session deleted."

    def purge_session(self, username: str | None, session_id: str) -> str:
        """An admin's explicit removal of a session and everything on it, other users' annotations and
        picks included (for a session hidden by its owner, or any other)."""
        user_id = self.ctx.users.user(username)
        if self.ctx.users.role(username) is not Role.ADMIN:
            raise RoleRequired("Purging a session needs the admin role.")
        started = time.time()
        with write_transaction(self.ctx.db) as db:
            freed = repo.purge_session(db, session_id, user_id)
        self._remove_files(session_id, freed, started)
        return "Session purged with every annotation and pick on it."

    def _remove_files(self, session_id: str, hashes: list[str], started: float) -> None:
        """Delete the files of image rows the committed delete removed, unless a round of another
        session has stored the same image since (it refreshes the file's age before its commit)."""
        sizes = [self.ctx.store.remove_unless_touched(sha, started) for sha in hashes]
        log.info("session %s deleted: %d image file(s), %d bytes freed", session_id,
                 sum(1 for size in sizes if size), sum(sizes))

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
