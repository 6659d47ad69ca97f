"""BatchingCritic: concurrent callers share generate calls and still get exactly their own results."""

from __future__ import annotations

import threading
import time

import pytest

from rr_core.critics.base import Critic, Generation
from rr_core.critics.batching import BatchingCritic
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from tests.critics.test_transformers_critic import requests_of_different_lengths


class Recorder(Critic):
    """Records the batch sizes it was called with."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__("recorder", ["t2i", "edit"])
        self.batches: list[int] = []
        self.fail = fail

    def complete(self, conversations):
        self.batches.append(len(conversations))
        if self.fail:
            raise RuntimeError("backend down")
        return [Generation(text=f"row {i}") for i in range(len(conversations))]

    def complete_stream(self, conversation):
        raise NotImplementedError


def run_threads(fn, args_list) -> list:
    results: list = [None] * len(args_list)
    barrier = threading.Barrier(len(args_list))

    def work(i, args):
        barrier.wait()
        results[i] = fn(*args)

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(args_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_window_groups_concurrent_calls_up_to_max_batch():
    inner = Recorder()
    batching = BatchingCritic(inner, window_s=0.2, max_batch=3)
    requests = requests_of_different_lengths()
    results = run_threads(lambda r: batching.critique(r), [(requests[i % 4],) for i in range(5)])
    assert all(r is not None for r in results)
    assert sum(inner.batches) == 5 and max(inner.batches) == 3 and len(inner.batches) == 2


def test_lone_request_waits_only_the_window():
    inner = Recorder()
    batching = BatchingCritic(inner, window_s=0.05, max_batch=8)
    start = time.perf_counter()
    batching.critique(requests_of_different_lengths()[0])
    assert time.perf_counter() - start < 1.0 and inner.batches == [1]


def test_backend_error_reaches_every_caller_and_the_worker_survives():
    inner = Recorder(fail=True)
    batching = BatchingCritic(inner, window_s=0.01)
    with pytest.raises(RuntimeError, match="backend down"):
        batching.critique(requests_of_different_lengths()[0])
    inner.fail = False
    assert batching.critique(requests_of_different_lengths()[0]) is not None


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="window_s"):
        BatchingCritic(Recorder(), window_s=-1)
    with pytest.raises(ValueError, match="max_batch"):
        BatchingCritic(Recorder(), max_batch=0)


@pytest.mark.slow
@pytest.mark.parametrize("fast_decode", ["off", "static"])
def test_concurrent_callers_get_their_solo_results_in_fewer_generate_calls(
        tiny_chat_model, tiny_critic_path, fast_decode):
    config = TransformersCriticConfig(model=str(tiny_critic_path), tasks=("t2i", "edit"), max_new_tokens=16,
                                      batch_size=4, fast_decode=fast_decode)
    critic = TransformersCritic(config, chat_model=tiny_chat_model)
    requests = requests_of_different_lengths()
    alone = [critic.critique(r).raw_text for r in requests]
    batching = BatchingCritic(critic, window_s=0.5, max_batch=4)
    calls_before = tiny_chat_model.generate_calls
    together = run_threads(lambda r: batching.critique(r).raw_text, [(r,) for r in requests])
    assert together == alone
    assert tiny_chat_model.generate_calls - calls_before < len(requests)


@pytest.mark.slow
def test_concurrent_streams_each_see_only_their_own_text(tiny_chat_model, tiny_critic_path):
    config = TransformersCriticConfig(model=str(tiny_critic_path), tasks=("t2i", "edit"), max_new_tokens=16,
                                      batch_size=4, fast_decode="off")
    critic = TransformersCritic(config, chat_model=tiny_chat_model)
    requests = requests_of_different_lengths()[:3]
    alone = [critic.critique(r).raw_text for r in requests]
    batching = BatchingCritic(critic, window_s=0.5, max_batch=4)
    calls_before = tiny_chat_model.generate_calls
    streams = run_threads(lambda r: list(batching.stream(r)), [(r,) for r in requests])
    assert tiny_chat_model.generate_calls - calls_before == 1
    for items, text in zip(streams, alone):
        assert "".join(items[:-1]) == items[-1].raw_text == text


def test_a_wrapped_constrained_critic_still_marks_its_critiques(tiny_chat_model, tiny_critic_path):
    """The constrained flag travels with the wrapper, so stored critiques say how they were decoded."""
    from rr_core.critics.tiny import tiny_critic_settings

    settings = {**tiny_critic_settings(), "model": str(tiny_critic_path)}
    inner = TransformersCritic(TransformersCriticConfig(**settings), chat_model=tiny_chat_model)
    critique = BatchingCritic(inner).critique(requests_of_different_lengths()[0])
    assert critique.constrained and critique.status.value == "ok"
