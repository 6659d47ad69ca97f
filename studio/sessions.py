"""A user's stored sessions: list, open, delete (or hide, or an admin's purge), and the counts the
Sessions view shows."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from storage import repository as repo
from storage.db import write_transaction
from storage.models import Role
from studio import codec
from studio.context import AppContext
from studio.users import RoleRequired
from studio.views import RunView

log = logging.getLogger(__name__)

ADMINS_ONLY = "Only an admin can see hidden sessions or purge one."
"""The one answer a non-admin gets from every hidden-session call, whatever the id."""


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

    def _admin(self, username: str | None) -> str:
        """The caller's id if they are an admin; otherwise one refusal whatever they asked about, so
        it never tells whether a session id exists (anonymous callers are asked to sign in first)."""
        user_id = self.ctx.users.user(username)
        if self.ctx.users.role(username) is not Role.ADMIN:
            raise RoleRequired(ADMINS_ONLY)
        return user_id

    def hidden_sessions(self, username: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """Admins: sessions their owners deleted while other users' reviews hung on them, with how many
        annotations and A/B picks each holds (what a purge would take from the training data)."""
        user_id = self._admin(username)
        with self.ctx.db() as db:
            rows = repo.hidden_sessions(db, user_id, limit)
            ids = [row.id for row in rows]
            annotations, picks = repo.annotation_counts(db, ids), repo.pick_counts(db, ids)
            return [{"id": row.id, "request": row.request or row.title, "owner": row.owner_id,
                     "hidden_at": _when(row.hidden_at), "annotations": annotations.get(row.id, 0),
                     "picks": picks.get(row.id, 0)} for row in rows]

    def purge_preview(self, username: str | None, session_id: str) -> dict[str, Any]:
        """Admins: what purging this session would remove, counted; nothing is changed."""
        user_id = self._admin(username)
        with self.ctx.db() as db:
            return _contents_dict(repo.session_contents(db, session_id, user_id))

    def purge_session(self, username: str | None, session_id: str) -> str:
        """An admin's explicit removal of a session and everything on it, other users' annotations and
        picks included (for a session hidden by its owner, or any other); says what it removed."""
        user_id = self._admin(username)
        started = time.time()
        with write_transaction(self.ctx.db) as db:
            removed = _contents_dict(repo.session_contents(db, session_id, user_id))
            freed = repo.purge_session(db, session_id, user_id)
        self._remove_files(session_id, freed, started)
        return f"Purged {contents_text(removed)}."

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


def _when(moment: datetime | None) -> str | None:
    """A stored UTC time as the Sessions view shows dates."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else None


def _contents_dict(contents: repo.SessionContents) -> dict[str, Any]:
    row = contents.row
    return {"id": row.id, "request": row.request or row.title, "owner": row.owner_id,
            "hidden_at": _when(row.hidden_at), "rounds": contents.rounds, "images": contents.images,
            "critiques": contents.critiques, "annotations": contents.annotations, "picks": contents.picks,
            "reviewers": contents.reviewers, "freed_images": len(contents.freed_images)}


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def contents_text(contents: dict[str, Any]) -> str:
    """What a purge removes, in words (from `purge_preview`'s dict): the purge's answer and the
    confirmation question say the same thing."""
    by = f" (by {', '.join(contents['reviewers'])})" if contents["reviewers"] else ""
    rounds, images = _counted(contents["rounds"], "round"), _counted(contents["images"], "image")
    critiques, annotations = _counted(contents["critiques"], "critique"), _counted(contents["annotations"], "annotation")
    picks, files = _counted(contents["picks"], "A/B pick"), _counted(contents["freed_images"], "image file")
    return (f"“{contents['request']}” ({contents['owner']}'s session): its {rounds}, {images} and {critiques}; "
            f"{annotations} and {picks} made on it{by}; and {files} no other session uses")
