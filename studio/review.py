"""Review by annotators and admins: the queue of critiques to annotate, verdicts per dimension, and
A/B picks between two images of the same request."""

from __future__ import annotations

from typing import Any

from rr_core.errors import InvalidRequest
from rr_core.limits import MAX_COMMENT_CHARS
from storage import repository as repo
from storage.db import write_transaction
from studio.context import AppContext
from studio.views import score_rows


class Review:
    """The Annotate view's jobs; each needs the annotator or admin role."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def next_critique(self, username: str | None) -> dict[str, Any] | None:
        """The next critique this annotator has not reviewed, with its images, or None."""
        user_id = self.ctx.users.reviewer(username)
        store = self.ctx.store
        with self.ctx.db() as db:
            queue = repo.annotation_queue(db, annotator_id=user_id, limit=repo.MAX_PAGE)
            done = repo.count_annotated_critiques(db, annotator_id=user_id)
            if not queue:
                return None
            row = queue[0]
            round_ = row.round
            critique = repo.critique_from_row(row)
            return {"critique_id": row.id, "round_id": round_.id, "session_id": round_.session_id,
                    "task": round_.session.task, "request": round_.prompt, "status": row.status,
                    "summary": critique.summary, "raw_text": row.raw_text, "scores": score_rows(critique),
                    "image": store.open(round_.image_sha256),
                    "source_image": store.open(round_.source_image_sha256) if round_.source_image_sha256 else None,
                    "progress": {"done": done, "remaining": len(queue)}}

    def annotate(self, username: str | None, critique_id: int, verdicts: dict[str, dict[str, Any]]) -> str:
        """Store the annotator's verdict per dimension: {"key": {"verdict": accept|reject|correct,
        "score": float (for correct), "comment": str}}; all in one transaction."""
        user_id = self.ctx.users.reviewer(username)
        if not verdicts:
            raise InvalidRequest("Give a verdict for at least one dimension.")
        with write_transaction(self.ctx.db) as db:
            for key, entry in verdicts.items():
                verdict = str(entry.get("verdict", "")).lower()
                score = entry.get("score")
                corrected = None if score in (None, "") or verdict != "correct" else float(score)
                repo.add_annotation(db, critique_id=int(critique_id), annotator_id=user_id, dimension=key,
                                    verdict=verdict, corrected_score=corrected,
                                    comment=str(entry.get("comment", ""))[:MAX_COMMENT_CHARS])
        return f"Saved {len(verdicts)} verdict(s) on critique {critique_id}."

    def next_pair(self, username: str | None) -> dict[str, Any] | None:
        """Two images of the same request this user has not compared yet (the earliest such pair)."""
        user_id = self.ctx.users.reviewer(username)
        store = self.ctx.store
        with self.ctx.db() as db:
            pair = repo.first_unjudged_pair(db, user_id)
            if pair is None:
                return None
            row_a = repo.get_round_for_user(db, pair[0], user_id)
            row_b = repo.get_round_for_user(db, pair[1], user_id)
            return {"round_a": row_a.id, "round_b": row_b.id, "request": row_a.session.prompt,
                    "prompt_a": row_a.used_prompt, "prompt_b": row_b.used_prompt,
                    "image_a": store.open(row_a.image_sha256), "image_b": store.open(row_b.image_sha256)}

    def pick_pair(self, username: str | None, round_a: int, round_b: int, preference: str) -> str:
        """Record which of two images is better (A, B or tie)."""
        user_id = self.ctx.users.reviewer(username)
        if preference not in ("A", "B", "tie"):
            raise InvalidRequest(f"Pick A, B or tie, not {preference!r}.")
        with write_transaction(self.ctx.db) as db:
            repo.add_pair_judgement(db, round_a_id=int(round_a), round_b_id=int(round_b), preference=preference,
                                    judge_id=user_id)
        return f"Recorded {preference} for rounds {round_a} vs {round_b}."
