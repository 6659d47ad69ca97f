"""Bounded waits for remote critiques: a total deadline and a cancel event, checked while a request is in flight.

A per-read timeout does not bound a request: a server that sends a keep-alive byte every few seconds
resets it forever, and a retried attempt starts the clock again. Here a request runs as a coroutine on
a private event loop, and the calling thread wakes every `POLL_S` to check the deadline and the
caller's cancel event; when either fires, the coroutine is cancelled, which closes its connection
(the server sees the client go away and can stop decoding). The calling code stays synchronous.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from rr_core.errors import RRError

T = TypeVar("T")

POLL_S = 0.05
"""How often a waiting thread looks at the deadline and the cancel event (bounds the reaction time)."""


class CritiqueCancelled(RRError):
    """The caller cancelled a critique while its request was in flight (the request was abandoned)."""


class DeadlinePassed(Exception):
    """A deadline ran out; the caller turns it into an error that names the server and the stage."""


class Deadline:
    """The moment by which a whole critique (every attempt and every wait between them) must be done."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def sleep(self, seconds: float, cancel: threading.Event | None) -> None:
        """Wait `seconds` (a backoff), but never past the deadline; DeadlinePassed or CritiqueCancelled
        when the wait is cut short."""
        wait = min(seconds, max(self.remaining(), 0.0))
        if cancel is not None and cancel.wait(wait):
            raise CritiqueCancelled("the critique was cancelled")
        if cancel is None:
            time.sleep(wait)
        if self.expired():
            raise DeadlinePassed()


class BoundedLoop:
    """A private event loop that runs one critique's coroutines under its deadline and cancel event."""

    def __init__(self, deadline: Deadline, cancel: threading.Event | None) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.loop = asyncio.new_event_loop()

    def __enter__(self) -> BoundedLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` to its end, or cancel it (closing its connection) when the deadline passes
        (DeadlinePassed) or the cancel event is set (CritiqueCancelled)."""
        task = self.loop.create_task(coroutine)
        while True:
            if self.cancel is not None and self.cancel.is_set():
                self._abandon(task)
                raise CritiqueCancelled("the critique was cancelled")
            remaining = self.deadline.remaining()
            if remaining <= 0:
                self._abandon(task)
                raise DeadlinePassed()
            self.loop.run_until_complete(asyncio.wait({task}, timeout=min(remaining, POLL_S)))
            if task.done():
                return task.result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """The items of an async iterator, each waited for under the deadline and the cancel event."""
        iterator = items.__aiter__()
        try:
            while True:
                try:
                    item = self.run(_next(iterator))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None and not self.loop.is_closed():
                self.loop.run_until_complete(closer())

    def _abandon(self, task: asyncio.Task) -> None:
        task.cancel()
        self.loop.run_until_complete(asyncio.gather(task, return_exceptions=True))


async def _next(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()
