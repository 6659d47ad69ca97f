"""One critic per task behind the critic interface: the T2I and Edit checkpoints are separate models."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

from rr_core.critics.base import Critic, CritiqueRequest, PairRequest, UnsupportedTask
from rr_core.critique import Critique, PairwiseCritique
from rr_core.rubric import Task

_Request = TypeVar("_Request", CritiqueRequest, PairRequest)


class TaskRouter:
    """Sends each request to the critic of its task; a mixed batch is split by task, order restored.

    The same critic may serve several tasks (a base model judging both); each critic still gets
    its requests as one batch.
    """

    def __init__(self, critics: Mapping[Task | str, Critic]) -> None:
        self.critics = {Task.parse(task): critic for task, critic in critics.items()}
        if not self.critics:
            raise ValueError("a TaskRouter needs at least one critic")
        for task, critic in self.critics.items():
            if task not in critic.tasks:
                raise ValueError(f"critic {critic.model_id!r} does not serve task {task.value!r}")

    @property
    def tasks(self) -> frozenset[Task]:
        return frozenset(self.critics)

    def critic_for(self, task: Task | str) -> Critic:
        task = Task.parse(task)
        if task not in self.critics:
            served = ", ".join(sorted(t.value for t in self.critics))
            raise UnsupportedTask(f"No critic is loaded for task {task.value!r} (loaded: {served}).")
        return self.critics[task]

    def critique_many(self, requests: Sequence[CritiqueRequest],
                      cancel: threading.Event | None = None) -> list[Critique]:
        return self._split(requests, lambda critic, batch: critic.critique_many(batch, cancel))

    def critique(self, request: CritiqueRequest, cancel: threading.Event | None = None) -> Critique:
        return self.critic_for(request.task).critique(request, cancel)

    def stream(self, request: CritiqueRequest, cancel: threading.Event | None = None) -> Iterator[str | Critique]:
        return self.critic_for(request.task).stream(request, cancel)

    def compare_many(self, requests: Sequence[PairRequest],
                     cancel: threading.Event | None = None) -> list[PairwiseCritique]:
        return self._split(requests, lambda critic, batch: critic.compare_many(batch, cancel))

    def compare(self, request: PairRequest, cancel: threading.Event | None = None) -> PairwiseCritique:
        return self.critic_for(request.task).compare(request, cancel)

    def _split(self, requests: Sequence[_Request], run) -> list:
        groups: dict[int, tuple[Critic, list[int]]] = {}
        for index, request in enumerate(requests):
            critic = self.critic_for(request.task)
            groups.setdefault(id(critic), (critic, []))[1].append(index)
        results: list = [None] * len(requests)
        for critic, indices in groups.values():
            for index, result in zip(indices, run(critic, [requests[i] for i in indices])):
                results[index] = result
        return results
