"""Fair turns on the GPU: a per-user limit counted when a job is submitted, a bounded queue that
says how many jobs are ahead, and round-robin between users.

Why here and not in Gradio's queue: Gradio runs the "gpu" events one at a time in arrival order and
a job only reaches the studio when it starts, so a per-user limit taken at start never fired (ten
runs by one user were all accepted and everyone else waited behind them) and the queue had no size.
The web layer now lets GPU events through (up to `capacity`) and every job takes a `Ticket` here
at once: refused when the user already has `per_user` jobs queued or running, or when `capacity`
jobs are; otherwise it waits for its turn, and turns go to users in rotation, each user's own jobs
in order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from rr_core.errors import RRError

POLL_S = 0.5
"""How often a waiting job reports its place in the queue."""


class RunLimitExceeded(RRError):
    """The user already has as many jobs queued or running as the server allows."""


class StudioBusy(RRError):
    """The queue is full."""


class StoppedWhileQueued(RRError):
    """The user pressed Stop before the job got its turn."""


class Ticket:
    """One submitted job: its user, its cancel event (Stop sets it), and whether it has its turn."""

    def __init__(self, scheduler: FairScheduler, user_id: str, seq: int) -> None:
        self.scheduler = scheduler
        self.user_id = user_id
        self.seq = seq
        self.cancel = threading.Event()
        self.granted = threading.Event()

    def ahead(self) -> int:
        """Jobs that will run before this one (those running included); 0 once it runs."""
        return self.scheduler.ahead_of(self)

    def waiting(self) -> Iterator[int]:
        """Until the turn comes, the number of jobs ahead, every POLL_S; raises StoppedWhileQueued when
        Stop is pressed first."""
        while not self.granted.is_set():
            if self.cancel.is_set():
                raise StoppedWhileQueued("Stopped before the run started; nothing was generated.")
            yield self.ahead()
            self.granted.wait(POLL_S)

    def wait(self) -> None:
        """Block until the turn comes (or Stop is pressed: StoppedWhileQueued)."""
        for _ in self.waiting():
            pass


class FairScheduler:
    """`workers` jobs run at once (the GPU: one); at most `per_user` jobs of one user and `capacity`
    jobs in all are queued or running."""

    def __init__(self, per_user: int, capacity: int = 16, workers: int = 1) -> None:
        if per_user < 1 or capacity < 1 or workers < 1:
            raise ValueError("per_user, capacity and workers must be at least 1")
        self.per_user = per_user
        self.capacity = capacity
        self.workers = workers
        self._lock = threading.Lock()
        self._running: list[Ticket] = []
        self._waiting: dict[str, deque[Ticket]] = {}
        self._served: dict[str, int] = {}
        self._turns = 0
        self._submitted = 0
        self._tickets: dict[str, set[Ticket]] = {}

    def _count(self, user_id: str | None = None) -> int:
        if user_id is not None:
            return len(self._tickets.get(user_id, ()))
        return sum(len(tickets) for tickets in self._tickets.values())

    def _pick(self, queues: dict[str, deque[Ticket]], served: dict[str, int]) -> str | None:
        """The next user to get a turn: the one served longest ago (never served first), then the one
        whose oldest job was submitted first."""
        users = [user for user, queue in queues.items() if queue]
        if not users:
            return None
        return min(users, key=lambda user: (served.get(user, -1), queues[user][0].seq))

    def _order(self) -> list[Ticket]:
        """The waiting tickets in the order they will get turns (round-robin over users)."""
        queues = {user: deque(queue) for user, queue in self._waiting.items()}
        served, turn, order = dict(self._served), self._turns, []
        while (user := self._pick(queues, served)) is not None:
            order.append(queues[user].popleft())
            served[user], turn = turn, turn + 1
        return order

    def _grant(self) -> None:
        while len(self._running) < self.workers:
            user = self._pick(self._waiting, self._served)
            if user is None:
                return
            ticket = self._waiting[user].popleft()
            self._served[user], self._turns = self._turns, self._turns + 1
            self._running.append(ticket)
            ticket.granted.set()

    def submit(self, user_id: str) -> Ticket:
        """Count a job at submission; RunLimitExceeded or StudioBusy when it cannot be queued."""
        with self._lock:
            if self._count(user_id) >= self.per_user:
                raise RunLimitExceeded(
                    f"You already have {self.per_user} run(s) queued or in progress; wait for one to finish "
                    "or press Stop.")
            if self._count() >= self.capacity:
                raise StudioBusy(f"The studio is busy: {self._count()} job(s) ahead of you, the most it queues. "
                                 "Try again in a minute.")
            ticket = Ticket(self, user_id, self._submitted)
            self._submitted += 1
            self._tickets.setdefault(user_id, set()).add(ticket)
            self._waiting.setdefault(user_id, deque()).append(ticket)
            self._grant()
            return ticket

    def release(self, ticket: Ticket) -> None:
        """The job is over (finished, failed or stopped): free its place and pass the turn on."""
        with self._lock:
            self._tickets.get(ticket.user_id, set()).discard(ticket)
            if ticket in self._running:
                self._running.remove(ticket)
            queue = self._waiting.get(ticket.user_id)
            if queue and ticket in queue:
                queue.remove(ticket)
            self._grant()

    def jobs(self, user_id: str) -> int:
        """This user's jobs queued or running (what the per-user limit counts)."""
        with self._lock:
            return self._count(user_id)

    def ahead_of(self, ticket: Ticket) -> int:
        with self._lock:
            if ticket in self._running:
                return 0
            order = self._order()
            return len(self._running) + (order.index(ticket) if ticket in order else 0)

    @contextmanager
    def slot(self, user_id: str) -> Iterator[Ticket]:
        """Submit a job for the block and release it after; the caller waits for the turn itself
        (`Ticket.wait`, or `Ticket.waiting` to show the place in the queue)."""
        ticket = self.submit(user_id)
        try:
            yield ticket
        finally:
            self.release(ticket)

    def cancel_all(self, user_id: str) -> int:
        """Set the cancel event of every job of this user, queued or running; returns how many."""
        with self._lock:
            tickets = list(self._tickets.get(user_id, ()))
        for ticket in tickets:
            ticket.cancel.set()
        return len(tickets)
