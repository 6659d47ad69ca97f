"""rr_core.serve batching: concurrent HTTP requests with equal settings share one generate call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from rr_core.critics.base import DecodeSettings
from rr_core.critics.batching import BatchItem, RequestBatcher
from rr_core.critics.constrained import GrammarLogitsProcessor
from rr_core.critique import ParseStatus
from rr_core.grammar import SectionCaps, compile_ebnf, critique_grammar, max_tokens_for
from rr_core.parser import parse_critique
from rr_core.rubric import Task
from rr_core.serve import batch_key, build_app
from tests.critics.servers import running_uvicorn

CAPS = SectionCaps(analysis=32, justification=4, summary=4, comments=4, refined=4)
PROMPTS = ["hi", "describe three red circles on a white background",
           "a cat", "rate this picture of a lighthouse at dusk, please, in detail"]


def body(prompt: str, max_tokens: int = 16, **extra) -> dict:
    return {"model": "tiny-critic", "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": prompt}], **extra}


def complete(url: str, payload: dict) -> str:
    response = httpx.post(f"{url}/chat/completions", json=payload, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def stream_text(url: str, payload: dict) -> str:
    """The concatenated content deltas of a streamed answer (which must end with a finish_reason)."""
    deltas, finished = [], False
    with httpx.stream("POST", f"{url}/chat/completions", json={**payload, "stream": True},
                      timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[len("data: "):])["choices"][0]
            deltas.append(choice["delta"].get("content", ""))
            finished = finished or choice["finish_reason"] is not None
    assert finished
    return "".join(deltas)


def run_together(calls: list) -> list:
    """Run the calls in threads released at once; their results in order (a call's error is re-raised)."""
    barrier = threading.Barrier(len(calls))

    def work(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(work, call) for call in calls]
        return [future.result(timeout=120) for future in futures]


@pytest.fixture(scope="module")
def solo_url(tiny_chat_model) -> Iterator[str]:
    """A server that decodes every request alone: the reference answers."""
    with running_uvicorn(build_app(tiny_chat_model, "tiny-critic", batch_window_ms=0, max_batch=1)) as url:
        yield url


@pytest.fixture(scope="module")
def batched(tiny_chat_model):
    """A batching server with a wide window, so requests released together land in one batch."""
    app = build_app(tiny_chat_model, "tiny-critic", batch_window_ms=500, max_batch=4)
    with running_uvicorn(app) as url:
        yield url, app.state.batcher.batcher


def test_concurrent_greedy_requests_get_their_solo_texts_in_fewer_generate_calls(solo_url, batched,
                                                                                   tiny_chat_model):
    url, batcher = batched
    alone = [complete(solo_url, body(p)) for p in PROMPTS]
    assert len(set(alone)) > 1  # different prompts: a mixed-up row would show
    calls_before, batches_before = tiny_chat_model.generate_calls, batcher.batches_run
    together = run_together([lambda p=p: complete(url, body(p)) for p in PROMPTS])
    assert together == alone
    assert tiny_chat_model.generate_calls - calls_before < len(PROMPTS)
    assert batcher.batches_run - batches_before < len(PROMPTS)


def test_concurrent_streams_each_get_their_own_text(solo_url, batched, tiny_chat_model):
    url, _ = batched
    alone = [complete(solo_url, body(p)) for p in PROMPTS]
    calls_before = tiny_chat_model.generate_calls
    calls = [lambda p=p: stream_text(url, body(p)) for p in PROMPTS[:3]]
    calls.append(lambda: complete(url, body(PROMPTS[3])))  # a plain request in the same batch
    together = run_together(calls)
    assert together == alone
    assert tiny_chat_model.generate_calls - calls_before < len(PROMPTS)


def test_a_grammar_request_shares_a_batch_with_a_plain_one(solo_url, batched, tiny_chat_model):
    url, batcher = batched
    budget = max_tokens_for(Task.T2I, "pointwise", CAPS)
    constrained = body(PROMPTS[1], budget,
                       structured_outputs={"grammar": critique_grammar(Task.T2I, "pointwise", CAPS)})
    plain = body(PROMPTS[0], budget)
    alone = [complete(solo_url, constrained), complete(solo_url, plain)]  # also compiles the grammar
    batches_before = batcher.batches_run
    together = run_together([lambda: complete(url, constrained), lambda: complete(url, plain)])
    assert batcher.batches_run - batches_before == 1
    assert parse_critique(together[0], Task.T2I).status is ParseStatus.OK, together[0]
    assert together == alone
    assert parse_critique(together[1], Task.T2I).status is not ParseStatus.OK


def test_different_temperatures_are_not_merged(batched, tiny_chat_model):
    url, batcher = batched
    calls_before, batches_before = tiny_chat_model.generate_calls, batcher.batches_run
    run_together([lambda: complete(url, body(PROMPTS[0])),
                  lambda: complete(url, body(PROMPTS[1], temperature=0.7)),
                  lambda: complete(url, body(PROMPTS[2]))])
    assert batcher.batches_run - batches_before == 2
    assert tiny_chat_model.generate_calls - calls_before == 2


def test_only_equal_settings_share_a_key_and_seeded_sampling_goes_alone():
    greedy = DecodeSettings(max_new_tokens=16)
    assert batch_key(greedy) == batch_key(DecodeSettings(max_new_tokens=16))
    assert batch_key(greedy) != batch_key(DecodeSettings(max_new_tokens=17))
    assert batch_key(DecodeSettings(temperature=0.7)) == batch_key(DecodeSettings(temperature=0.7))
    seeded = DecodeSettings(temperature=0.7, seed=3)
    assert batch_key(seeded) != batch_key(seeded)


def test_the_batcher_groups_a_window_by_key():
    groups: list[list[str]] = []
    release = threading.Event()

    def run_batch(batch: list[BatchItem]) -> list[str]:
        release.wait(timeout=10)
        groups.append([item.payload for item in batch])
        return [f"done {item.payload}" for item in batch]

    batcher = RequestBatcher(run_batch, window_s=0.3, max_batch=8)
    items = [batcher.submit(BatchItem(name, key=key)) for name, key in
             [("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", None)]]
    release.set()
    assert [item.result.result(timeout=10) for item in items] == ["done a1", "done b1", "done a2", "done c1"]
    assert groups == [["a1", "a2"], ["b1"], ["c1"]] and batcher.batches_run == 3


def test_a_none_row_is_left_unconstrained(tiny_chat_model):
    vocab = tiny_chat_model.model.config.get_text_config().vocab_size
    stops = sorted(tiny_chat_model.eos_ids)
    grammar = compile_ebnf(tiny_chat_model.processor, 'root ::= "a"', vocab_size=vocab, stop_token_ids=stops)
    processor = GrammarLogitsProcessor([grammar, None], 2, stop_token_ids=stops)
    scores = torch.randn(2, vocab)
    free_row = scores[1].clone()
    out = processor(torch.zeros(2, 3, dtype=torch.long), scores)
    assert torch.equal(out[1], free_row)
    assert torch.isinf(out[0]).sum() > vocab // 2
    with pytest.raises(ValueError, match="at least one row"):
        GrammarLogitsProcessor([None, None], 2, stop_token_ids=stops)


def test_bad_batching_settings_are_rejected(tiny_chat_model):
    with pytest.raises(ValueError, match="batch_window_ms"):
        build_app(tiny_chat_model, "tiny-critic", batch_window_ms=-1)
    with pytest.raises(ValueError, match="max_batch"):
        build_app(tiny_chat_model, "tiny-critic", max_batch=0)
