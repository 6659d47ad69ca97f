"""The fast decode path (kept bucketed static cache) gives the plain path's greedy tokens exactly."""

from __future__ import annotations

import pytest
import torch

from rr_core.critics.fast_decode import FastDecoder, batch_bucket, length_bucket
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.rubric import Task
from tests.critics.test_transformers_critic import requests_of_different_lengths


def make_critic(chat_model, path, fast_decode: str, **overrides) -> TransformersCritic:
    config = TransformersCriticConfig(model=str(path), tasks=("t2i", "edit"), fast_decode=fast_decode,
                                      **{"max_new_tokens": 24, **overrides})
    return TransformersCritic(config, chat_model=chat_model)


def test_buckets():
    assert [batch_bucket(n) for n in (1, 2, 3, 5, 8, 9, 33)] == [1, 2, 4, 8, 8, 16, 33]
    assert [length_bucket(n, 512) for n in (1, 512, 513, 2326 + 256)] == [512, 512, 1024, 3072]
    with pytest.raises(ValueError, match="at least one row"):
        batch_bucket(0)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="fast_decode must be one of"):
        TransformersCriticConfig(model="x", fast_decode="turbo")


@pytest.mark.slow
def test_static_path_equals_plain_path_batch_1_and_padded_batch_3(tiny_chat_model, tiny_critic_path):
    requests = requests_of_different_lengths()[:3]
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off", batch_size=4)
    plain_single = plain.critique(requests[1])
    plain_batch = plain.critique_many(requests)
    assert not tiny_chat_model.fast.caches
    fast = make_critic(tiny_chat_model, tiny_critic_path, "static", batch_size=4)
    fast_single = fast.critique(requests[1])
    fast_batch = fast.critique_many(requests)  # 3 rows padded to the bucket of 4
    assert len({c.prompt_tokens for c in plain_batch}) == 3, "left padding must actually happen"
    assert fast_single.raw_text == plain_single.raw_text and fast_single.raw_text
    assert [c.raw_text for c in fast_batch] == [c.raw_text for c in plain_batch]
    assert [(c.prompt_tokens, c.completion_tokens) for c in fast_batch] == \
        [(c.prompt_tokens, c.completion_tokens) for c in plain_batch]
    assert {rows for rows, _ in tiny_chat_model.fast.caches} == {1, 4}
    assert fast.fast_decode_status == "ready"


@pytest.mark.slow
def test_static_path_streams_the_same_text(tiny_chat_model, tiny_critic_path):
    request = requests_of_different_lengths()[0]
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off").critique(request)
    fast = make_critic(tiny_chat_model, tiny_critic_path, "static")
    items = list(fast.stream(request))
    assert tiny_chat_model.fast.caches, "the stream took the static path"
    assert "".join(items[:-1]) == items[-1].raw_text == plain.raw_text


@pytest.mark.slow
def test_static_path_applies_logits_processors_to_real_rows_only(tiny_chat_model, tiny_critic_path):
    calls: list[int] = []

    class StopAtOnce(TransformersCritic):
        def _logits_processors(self, batch_size, conversations):
            eos = min(self.chat_model.eos_ids)

            def force_eos(input_ids, scores):
                calls.append(scores.shape[0])
                forced = torch.full_like(scores, float("-inf"))
                forced[:, eos] = 0.0
                return forced

            return [force_eos]

    config = TransformersCriticConfig(model=str(tiny_critic_path), tasks=("t2i", "edit"), max_new_tokens=20,
                                      fast_decode="static", batch_size=4)
    critiques = StopAtOnce(config, chat_model=tiny_chat_model).critique_many(requests_of_different_lengths()[:3])
    assert [(c.raw_text, c.completion_tokens) for c in critiques] == [("", 1)] * 3
    assert calls == [3], "the processor sees the 3 real rows of the 4-row bucket, once"


@pytest.mark.slow
def test_compiled_on_cpu_falls_back_with_identical_output(tiny_chat_model, tiny_critic_path):
    request = requests_of_different_lengths()[2]
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off").critique(request)
    critic = make_critic(tiny_chat_model, tiny_critic_path, "compiled")
    assert critic.fast_decode_status.startswith("fallback: compile needs CUDA")
    assert critic.warmup() == critic.fast_decode_status
    assert critic.critique(request).raw_text == plain.raw_text
    assert not tiny_chat_model.fast.active


def test_warmup_status_and_failure_fall_back(tiny_chat_model):
    fast = FastDecoder(tiny_chat_model.model, "static")
    fast.mode = "compiled"  # as on a GPU; the run below fails like a compile error would
    seen: list[str] = []

    def failing_run(rows: int) -> None:
        seen.append(fast.status)
        raise RuntimeError("inductor exploded")

    thread = fast.warmup_in_background(failing_run, [1, 3])
    thread.join(timeout=10)
    assert seen == ["warming up"] * 2  # with dynamic shapes, then with static ones
    assert fast.status == "failed: RuntimeError: inductor exploded"
    assert not fast.active


def test_warmup_runs_each_bucket_once_per_pass(tiny_chat_model, tmp_path):
    fast = FastDecoder(tiny_chat_model.model, "static", artifacts_dir=tmp_path)
    fast.mode = "compiled"
    rows_seen: list[int] = []
    assert fast.warmup(rows_seen.append, [1, 3, 8]) == "ready"
    assert rows_seen == [1] * 3 + [4] * 3 + [8] * 3 and fast.warmup_s is not None
    assert fast.artifact_path().parent == tmp_path


@pytest.mark.slow
def test_compiled_decode_step_gives_plain_tokens_and_replays_without_recompiling(
        tiny_chat_model, tiny_critic_path, monkeypatch):
    """The GPU path's generate-with-compile, run by inductor on CPU (no CUDA graphs): same tokens, two compiles.

    Covers what only a GPU runs in the product: our kept static cache, padded batch rows and the
    shared-prefix prefill feeding transformers' compiled decode step.
    """
    from torch._dynamo.utils import counters

    from rr_core.critics import fast_decode
    from rr_core.critics.base import CritiqueRequest
    from tests.critics.conftest import solid
    from tests.critics.test_prefix_reuse import candidates

    monkeypatch.setattr(fast_decode, "compile_unavailable_reason", lambda model: "")
    batch = candidates(Task.EDIT, 3)
    plain = make_critic(tiny_chat_model, tiny_critic_path, "off", batch_size=4).critique_many(batch)
    long_request = CritiqueRequest(Task.T2I, "a red fox in fresh snow at dawn, " * 40, solid(64, 64, (9, 9, 9)))
    # Other batch and cache-length buckets: (2 rows, short), (2 rows, long), (4 rows, long).
    others = [requests_of_different_lengths()[:2], [long_request] * 2, [long_request] * 4]
    expected = [[c.raw_text for c in make_critic(tiny_chat_model, tiny_critic_path, "off").critique_many(b)]
                for b in others]
    critic = make_critic(tiny_chat_model, tiny_critic_path, "compiled", batch_size=4)
    assert tiny_chat_model.fast.mode == "compiled"
    first = critic.critique_many(batch)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0, "the decode step was compiled"
    again = critic.critique_many(batch)
    assert counters["stats"]["unique_graphs"] == graphs, "the kept cache replays the compiled step"
    assert tiny_chat_model.fast.shared_prefix_tokens > 0 and tiny_chat_model.fast.active
    assert [c.raw_text for c in first] == [c.raw_text for c in again] == [c.raw_text for c in plain]
    # Dynamic shapes: other batch and cache-length buckets reuse the compiled step (no compile on a request).
    # Dynamic shapes: a second batch size compiles the step once more, with symbolic sizes (dynamo
    # first assumes the sizes it saw); after that no bucket compiles again.
    seen = []
    for batch, texts in zip(others, expected):
        assert [c.raw_text for c in critic.critique_many(batch)] == texts
        seen.append(counters["stats"]["unique_graphs"])
    assert len({length for _, length in tiny_chat_model.fast.caches}) > 1 and len(tiny_chat_model.fast.caches) > 2
    assert seen[0] <= graphs + 1 and seen[1:] == [seen[0]] * 2, "new buckets recompiled the decode step"


def test_a_failing_dynamic_shape_compile_warms_up_again_with_static_shapes(tiny_chat_model, tmp_path):
    fast = FastDecoder(tiny_chat_model.model, "static", artifacts_dir=tmp_path)
    fast.mode = "compiled"  # as on a GPU; the run below stands in for the compiled decode
    seen: list[bool] = []

    def run(rows: int) -> None:
        seen.append(fast.uses_dynamic_shapes)
        if fast.uses_dynamic_shapes:
            raise RuntimeError("symbolic shapes unsupported")

    assert fast.warmup(run, [1, 2]) == "ready"
    assert seen[0] is True and not any(seen[1:]) and fast.dynamic_failed
    assert fast._compile_config().dynamic is False and fast.active

    failing = FastDecoder(tiny_chat_model.model, "static", artifacts_dir=tmp_path)
    failing.mode = "compiled"
    assert failing.warmup(lambda rows: 1 / 0, [1]).startswith("failed: ZeroDivisionError")
    assert not failing.active
