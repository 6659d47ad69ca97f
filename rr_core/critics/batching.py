"""Batching across concurrent requests: critiques that arrive within a short window decode as one batch.

A GPU decode step costs about the same for 1 row as for 8 (it is bound by reading the weights), so
callers in different threads (app users, a refine loop, a training rollout) get several times the
throughput when their requests share one decode call. `BatchingCritic` wraps any critic: a worker
thread collects the conversations that arrive within `window_s` of the first (up to `max_batch`),
runs them as one batch and hands every caller its own result. Streams are batched too when the
wrapped critic runs in this process: a per-row streamer splits each step's tokens by row, so every
caller still sees only its own text deltas. Greedy results are exactly what the caller would get
alone (left-padded rows are independent). `RequestBatcher` is the queue, window and worker part on
its own; rr_core.serve batches concurrent HTTP requests with it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rr_core.critics.base import Critic, Generation
from rr_core.prompts import Conversation

logger = logging.getLogger(__name__)


@dataclass
class BatchItem:
    """One request waiting for a batch: what to decode, its result, and (for a stream) its delta queue.

    `key` says which requests may share a decode: only items with equal keys go into one batch
    (e.g. the decode settings of a server request).
    """

    payload: Any
    key: Hashable = None
    result: Future = field(default_factory=Future)
    deltas: queue.Queue | None = None

    def stream(self) -> Iterator[str | Generation]:
        """The caller's side of a stream: its text deltas, then its Generation (or the batch's error)."""
        while True:
            delta = self.deltas.get()
            if delta is None:
                break
            yield delta
        yield self.result.result()


class RequestBatcher:
    """The queue, window and worker thread shared by BatchingCritic and rr_core.serve.

    A worker thread takes the first waiting item, then whatever arrives within `window_s` of it (up
    to `max_batch` items), splits them into groups of equal `key` (first-come order kept) and
    calls `run_batch(group)` once per group; that returns one result per item, and every caller's
    Future gets its own. An error in `run_batch` reaches every caller of that group, and the worker
    goes on serving. The worker starts on the first submit.
    """

    def __init__(self, run_batch: Callable[[list[BatchItem]], Sequence[Any]], window_s: float = 0.02,
                 max_batch: int = 8, name: str = "request-batcher") -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.run_batch = run_batch
        self.window_s = window_s
        self.max_batch = max_batch
        self.name = name
        self.batches_run = 0
        self._queue: queue.Queue[BatchItem] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, item: BatchItem) -> BatchItem:
        """Queue `item` for the next batch; wait on `item.result` (or iterate `item.stream()`)."""
        with self._start_lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._worker.start()
        self._queue.put(item)
        return item

    def _collect(self) -> list[BatchItem]:
        """The first waiting item, then whatever arrives within the window, up to max_batch."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=max(remaining, 0)) if remaining > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _serve(self) -> None:
        while True:
            groups: dict[Hashable, list[BatchItem]] = {}
            for item in self._collect():
                groups.setdefault(item.key, []).append(item)
            for group in groups.values():
                self._run(group)

    def _run(self, group: list[BatchItem]) -> None:
        self.batches_run += 1
        try:
            results = self.run_batch(group)
        except BaseException as error:  # each caller re-raises it in its own thread
            for item in group:
                item.result.set_exception(error)
                if item.deltas is not None:
                    item.deltas.put(None)
            return
        for item, result in zip(group, results):
            item.result.set_result(result)


class _RowSplitter:
    """A generate streamer that hands row i of every step to the i-th caller's own streamer."""

    def __init__(self, row_streamers: Sequence) -> None:
        self.row_streamers = row_streamers

    def put(self, value) -> None:
        # generate puts the prompt first ([rows, length]), then each step's tokens ([rows])
        for i, streamer in enumerate(self.row_streamers):
            streamer.put(value[i:i + 1])

    def end(self) -> None:
        for streamer in self.row_streamers:
            streamer.end()


class BatchingCritic(Critic):
    """Wraps a critic so concurrent calls share batches; same interface, same results.

    window_s: how long the first request of a batch waits for company (20 ms adds at most that much
        latency to a lone request). max_batch: the most conversations decoded together.
    """

    def __init__(self, critic: Critic, window_s: float = 0.02, max_batch: int = 8) -> None:
        self.batcher = RequestBatcher(self._run_batch, window_s, max_batch, name="critic-batcher")
        super().__init__(critic.model_id, critic.tasks, critic.settings,
                         list(critic.templates.values()), critic.constrained)
        self.critic = critic

    @property
    def window_s(self) -> float:
        return self.batcher.window_s

    @property
    def max_batch(self) -> int:
        return self.batcher.max_batch

    @property
    def batches_run(self) -> int:
        return self.batcher.batches_run

    # --- the Critic interface ----------------------------------------------------------------

    def complete(self, conversations: Sequence[Conversation]) -> list[Generation]:
        items = [self.batcher.submit(BatchItem(c)) for c in conversations]
        return [item.result.result() for item in items]

    def complete_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        if not hasattr(self.critic, "chat_model"):  # a server critic streams on its own
            yield from self.critic.complete_stream(conversation)
            return
        yield from self.batcher.submit(BatchItem(conversation, deltas=queue.Queue())).stream()

    # --- one batch -----------------------------------------------------------------------------

    def _run_batch(self, batch: list[BatchItem]) -> list[Generation]:
        conversations = [item.payload for item in batch]
        if not any(item.deltas is not None for item in batch):
            return self.critic.complete(conversations)
        critic = self.critic
        chat_model = critic.chat_model
        extra = {**critic._extra_generate_kwargs(conversations), "streamer": row_splitter(chat_model, batch)}
        return chat_model.complete([c.to_transformers() for c in conversations], critic.settings,
                                   critic._logits_processors(len(batch), conversations), extra)


def row_splitter(chat_model, batch: Sequence[BatchItem]) -> _RowSplitter:
    """A streamer for one batched decode that puts row i's text deltas on the i-th item's queue.

    Rows without a queue (callers that did not ask for a stream) get a streamer nobody reads.
    """
    from rr_core.critics.chat_model import DeltaStreamer

    row_streamers = []
    for item in batch:
        streamer = DeltaStreamer(chat_model.processor.tokenizer, chat_model.eos_ids)
        if item.deltas is not None:
            streamer.queue = item.deltas
        row_streamers.append(streamer)
    return _RowSplitter(row_streamers)
