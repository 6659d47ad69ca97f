"""The Sessions view as a designer reads it: per session its best image (by the newest critique of
each image, as a reopened session shows it), that reward, the request, how many rounds, and the date.
The session id travels along for opening and deleting but is never the first thing on screen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from storage import repository as repo
from studio.container import Services

THUMBNAIL = (256, 256)


@dataclass(frozen=True)
class SessionCard:
    """One session in the list."""

    session_id: str
    request: str
    task: str
    rounds: int
    created: datetime
    best_reward: float | None
    image: Image.Image | None

    @property
    def caption(self) -> str:
        reward = "no score" if self.best_reward is None else f"{self.best_reward:.2f}"
        short = self.request if len(self.request) <= 40 else self.request[:39] + "…"
        return f"{reward} · {short}"


def session_cards(service: Services, username: str | None, search: str = "", limit: int = 50) -> list[SessionCard]:
    """The caller's sessions, newest first, each with its best image as a thumbnail."""
    user_id = service.users.user(username)
    cards = []
    with service.sessions() as db:
        rows = repo.list_sessions(db, user_id, search=(search or "").strip()[:200] or None, limit=limit)
        counts = repo.round_counts(db, [row.id for row in rows])
        for row in rows:
            best_sha, best_reward, any_sha = None, None, None
            for round_ in repo.session_candidates(db, row.id, user_id):
                any_sha = any_sha or round_.image_sha256
                reward = round_.critiques[-1].reward if round_.critiques else None
                if reward is not None and (best_reward is None or reward > best_reward):
                    best_sha, best_reward = round_.image_sha256, reward
            sha = best_sha or any_sha
            image = None
            if sha is not None:
                image = service.store.open(sha).copy()
                image.thumbnail(THUMBNAIL)
            cards.append(SessionCard(row.id, row.request or row.title, row.task, counts.get(row.id, 0),
                                     row.created_at, best_reward, image))
    return cards
