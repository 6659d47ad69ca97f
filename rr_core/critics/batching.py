"""Batching across concurrent requests: critiques that arrive within a short window decode as one batch.

A GPU decode step costs about the same for 1 row as for 8 (it is bound by reading the weights), so
callers in different threads (app users, a refine loop, a training rollout) get several times the
throughput when their requests share a `generate` call. `BatchingCritic` wraps any critic: a worker
thread collects the conversations that arrive within `window_s` of the first (up to `max_batch`),
runs them as one batch and hands every caller its own result. Streams are batched too when the
wrapped critic runs in this process: a per-row streamer splits each step's tokens by row, so every
caller still sees only its own text deltas. Greedy results are exactly what the caller would get
alone (left-padded rows are independent).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from rr_core.critics.base import Critic, Generation
from rr_core.prompts import Conversation

logger = logging.getLogger(__name__)


@dataclass
class _Item:
    """One conversation waiting for a batch; `deltas` is set for a stream."""

    conversation: Conversation
    result: Future = field(default_factory=Future)
    deltas: queue.Queue | None = None


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
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        super().__init__(critic.model_id, critic.tasks, critic.settings, critic.reward_spec,
                         list(critic.templates.values()))
        self.critic = critic
        self.window_s = window_s
        self.max_batch = max_batch
        self.batches_run = 0
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._worker = threading.Thread(target=self._serve, name="critic-batcher", daemon=True)
        self._worker.start()

    # --- the Critic interface ----------------------------------------------------------------

    def generate(self, conversations: Sequence[Conversation]) -> list[Generation]:
        items = [_Item(c) for c in conversations]
        for item in items:
            self._queue.put(item)
        return [item.result.result() for item in items]

    def generate_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        if not hasattr(self.critic, "chat_model"):  # a server critic streams on its own
            yield from self.critic.generate_stream(conversation)
            return
        item = _Item(conversation, deltas=queue.Queue())
        self._queue.put(item)
        while True:
            delta = item.deltas.get()
            if delta is None:
                break
            yield delta
        yield item.result.result()

    # --- the worker ----------------------------------------------------------------------------

    def _collect(self) -> list[_Item]:
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
            batch = self._collect()
            self.batches_run += 1
            try:
                if any(item.deltas is not None for item in batch):
                    generations = self._generate_streaming(batch)
                else:
                    generations = self.critic.generate([item.conversation for item in batch])
            except BaseException as error:  # each caller re-raises it in its own thread
                for item in batch:
                    item.result.set_exception(error)
                    if item.deltas is not None:
                        item.deltas.put(None)
                continue
            for item, generation in zip(batch, generations):
                item.result.set_result(generation)

    def _generate_streaming(self, batch: list[_Item]) -> list[Generation]:
        """One batched decode whose tokens are split by row into each caller's delta queue."""
        from rr_core.critics.transformers_critic import _DeltaStreamer

        critic = self.critic
        chat_model = critic.chat_model
        conversations = [item.conversation for item in batch]
        row_streamers = []
        for item in batch:
            streamer = _DeltaStreamer(chat_model.processor.tokenizer, chat_model.eos_ids)
            if item.deltas is not None:
                streamer.queue = item.deltas
            row_streamers.append(streamer)
        extra = {**critic._extra_generate_kwargs(conversations), "streamer": _RowSplitter(row_streamers)}
        return chat_model.generate([c.to_transformers() for c in conversations], critic.settings,
                                   critic._logits_processors(len(batch), conversations), extra)
