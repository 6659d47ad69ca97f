"""Prefix KV reuse: rows of one request prefill their shared prefix once, with the plain path's tokens."""

from __future__ import annotations

import pytest
import torch

from rr_core.critics.base import CritiqueRequest
from rr_core.critics.prefix_reuse import image_spans, shared_prefix_length, supports_prefix_reuse
from rr_core.critique import ParseStatus
from rr_core.rubric import Task
from tests.critics.conftest import gradient, solid
from tests.critics.test_constrained_backends import CAPS, budget
from tests.critics.test_fast_decode import make_critic
from tests.critics.test_transformers_critic import requests_of_different_lengths


def candidates(task: Task, count: int, request: str = "make the sky purple and add a small boat") -> list:
    source = gradient(96, 64) if task is Task.EDIT else None
    return [CritiqueRequest(task, request, solid(96, 64, (40 * i, 120, 200 - 30 * i)), source)
            for i in range(count)]


def encoded(critic, requests):
    return dict(critic.chat_model.encode([critic._pointwise_conversation(r).to_transformers() for r in requests]))


def test_image_spans():
    assert image_spans(torch.tensor([0, 1, 1, 0, 0, 1, 1, 1])) == [(1, 3), (5, 8)]
    assert image_spans(torch.tensor([1, 0, 1])) == [(0, 1), (2, 3)]
    assert image_spans(torch.tensor([0, 0])) == []


def test_the_shared_prefix_stops_at_the_first_image_that_differs(tiny_chat_model, tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path, "static")
    # Edit: same request and source image, different candidates: the source image is shared.
    edit = encoded(critic, candidates(Task.EDIT, 3))
    source_span, candidate_span = image_spans(edit["mm_token_type_ids"][0])
    assert source_span[1] < shared_prefix_length(edit) == candidate_span[0]
    # T2I: the prefix ends where the (different) candidate images begin.
    t2i = encoded(critic, candidates(Task.T2I, 2))
    assert shared_prefix_length(t2i) == image_spans(t2i["mm_token_type_ids"][0])[0][0]
    # Identical rows share everything; one row or left-padded rows share nothing.
    same = encoded(critic, [candidates(Task.T2I, 1)[0]] * 2)
    assert shared_prefix_length(same) == same["input_ids"].shape[1]
    assert shared_prefix_length(encoded(critic, candidates(Task.T2I, 1))) == 0
    assert shared_prefix_length(encoded(critic, requests_of_different_lengths()[:2])) == 0


def test_a_different_source_image_is_not_shared(tiny_chat_model, tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path, "static")
    rows = candidates(Task.EDIT, 2)
    rows[1] = CritiqueRequest(Task.EDIT, rows[1].request, rows[1].image, solid(96, 64, (9, 9, 9)))
    batch = encoded(critic, rows)
    assert shared_prefix_length(batch) == image_spans(batch["mm_token_type_ids"][0])[0][0]


@pytest.mark.parametrize("task,count", [(Task.EDIT, 3), (Task.T2I, 4), (Task.EDIT, 8)])
def test_reused_prefix_gives_the_plain_paths_tokens(tiny_chat_model, tiny_critic_path, task, count):
    requests = candidates(task, count)
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off", batch_size=8).critique_many(requests)
    fast = make_critic(tiny_chat_model, tiny_critic_path, "static", batch_size=8).critique_many(requests)
    assert tiny_chat_model.fast.shared_prefix_tokens >= 64, "the batch took the prefix path"
    assert [c.raw_text for c in fast] == [c.raw_text for c in plain]


def test_identical_rows_share_all_but_the_last_token(tiny_chat_model, tiny_critic_path):
    """Two callers asking the same thing (and the warm-up's batches): nothing left to prefill but one token."""
    requests = [candidates(Task.EDIT, 1)[0]] * 3
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off").critique_many(requests)
    fast = make_critic(tiny_chat_model, tiny_critic_path, "static").critique_many(requests)
    assert [c.raw_text for c in fast] == [c.raw_text for c in plain]
    assert tiny_chat_model.fast.shared_prefix_tokens == fast[0].prompt_tokens - 1


def test_prefix_reuse_under_the_grammar(tiny_chat_model, tiny_critic_path):
    requests = candidates(Task.EDIT, 2)
    settings = {"constrained": True, "grammar_caps": CAPS, "max_new_tokens": budget(Task.EDIT)}
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off", **settings).critique_many(requests)
    fast = make_critic(tiny_chat_model, tiny_critic_path, "static", **settings).critique_many(requests)
    assert tiny_chat_model.fast.shared_prefix_tokens > 0
    assert [c.raw_text for c in fast] == [c.raw_text for c in plain]
    assert all(c.status is ParseStatus.OK for c in fast), [c.problems for c in fast]


def test_prefix_reuse_can_be_switched_off_and_other_batches_take_the_normal_path(tiny_chat_model,
                                                                                 tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path, "static", prefix_reuse=False)
    critic.critique_many(candidates(Task.EDIT, 2))
    assert tiny_chat_model.fast.shared_prefix_tokens == 0
    critic = make_critic(tiny_chat_model, tiny_critic_path, "static")
    critic.critique_many(requests_of_different_lengths()[:3])
    assert tiny_chat_model.fast.shared_prefix_tokens == 0
    assert supports_prefix_reuse(tiny_chat_model.model)


def test_a_failing_prefix_prefill_falls_back_to_prefilling_every_row(tiny_chat_model, tiny_critic_path,
                                                                     monkeypatch):
    from rr_core.critics import fast_decode

    def broken(*args, **kwargs):
        raise RuntimeError("positions of an unknown model")

    requests = candidates(Task.EDIT, 2)
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off").critique_many(requests)
    monkeypatch.setattr(fast_decode, "prefill_shared_prefix", broken)
    fast = make_critic(tiny_chat_model, tiny_critic_path, "static").critique_many(requests)
    assert [c.raw_text for c in fast] == [c.raw_text for c in plain]
    assert not tiny_chat_model.fast.prefix_reuse and tiny_chat_model.fast.shared_prefix_tokens == 0
