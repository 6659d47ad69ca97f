"""What every job of the application layer shares: the models, the database, the image store and who
acts. Built once by `studio.container.create_services`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from rr_core.rubric import Task
from storage.images import ImageStore
from studio.users import Users


class ModelsLike(Protocol):
    """The loaded models (rr_core.presets.Models, or test doubles): a loop, a critic and generators."""

    preset: Any

    def loop(self, task: Task | str) -> Any: ...
    def critic(self) -> Any: ...
    def generator(self, task: Task | str) -> Any: ...


@dataclass
class AppContext:
    models: ModelsLike
    db: sessionmaker[Session]
    """Makes database sessions; reads use `db()`, writes `storage.db.write_transaction(db)`."""
    store: ImageStore
    users: Users
