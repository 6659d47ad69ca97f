"""The critique grammar wired into the backends: in process, over HTTP through rr_core.serve, and stored."""

from __future__ import annotations

import httpx
import pytest

from rr_core.critics.base import CritiqueRequest, PairRequest
from rr_core.critics.openai_critic import OpenAICritic, OpenAICriticConfig
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.critique import ParseStatus
from rr_core.grammar import SectionCaps, critique_grammar, max_tokens_for
from rr_core.images import data_url
from rr_core.reward import RewardSpec, apply_reward
from rr_core.rubric import Task, dimensions
from rr_core.serve import build_app
from tests.critics.conftest import gradient, solid
from tests.critics.servers import running_uvicorn

pytestmark = pytest.mark.slow

CAPS = {"analysis": 40, "justification": 16, "summary": 16, "comments": 16, "refined": 24}
T2I = CritiqueRequest(Task.T2I, "three red circles on white", gradient(64, 64))
EDIT = CritiqueRequest(Task.EDIT, "make the square green", gradient(64, 64), source_image=solid(64, 64, (0, 0, 200)))
PAIR = PairRequest(Task.T2I, "three red circles on white", gradient(64, 64), solid(64, 64, (200, 0, 0)))


def budget(task: Task, mode: str = "pointwise") -> int:
    return max_tokens_for(task, mode, SectionCaps(**CAPS))


def critic(chat_model, constrained: bool, **overrides) -> TransformersCritic:
    values = dict(model="tiny", tasks=("t2i", "edit"), constrained=constrained, grammar_caps=CAPS,
                  max_new_tokens=max(budget(t) for t in Task), temperature=1.0, seed=3)
    values.update(overrides)
    return TransformersCritic(TransformersCriticConfig(**values), chat_model=chat_model)


def assert_well_formed(critique, task: Task) -> None:
    assert critique.status is ParseStatus.OK, (critique.problems, critique.raw_text)
    assert critique.constrained and not critique.truncated
    for dim in dimensions(task):
        entry = critique.scores[dim.key]
        assert entry.not_applicable or 1.0 <= entry.score <= 4.0
        assert dim.na_allowed or not entry.not_applicable
    assert critique.reward is None  # the caller applies its reward spec
    reward = apply_reward(critique, RewardSpec()).reward
    assert reward is not None and 0.0 <= reward <= 1.0


def test_a_mixed_batch_parses_row_by_row(tiny_chat_model):
    results = critic(tiny_chat_model, True).critique_many([T2I, EDIT, T2I])
    for result, task in zip(results, (Task.T2I, Task.EDIT, Task.T2I)):
        assert_well_formed(result, task)


def test_streaming_under_the_grammar(tiny_chat_model):
    items = list(critic(tiny_chat_model, True).stream(EDIT))
    final = items[-1]
    assert "".join(items[:-1]) == final.raw_text
    assert_well_formed(final, Task.EDIT)


def test_pairwise_under_the_grammar(tiny_chat_model):
    pair = critic(tiny_chat_model, True, max_new_tokens=budget(Task.T2I, "pairwise")).compare(PAIR)
    assert pair.status is ParseStatus.OK and pair.constrained and pair.preference is not None


def test_without_the_grammar_the_same_model_does_not_parse(tiny_chat_model):
    result = critic(tiny_chat_model, False, max_new_tokens=64).critique(T2I)
    assert result.status is not ParseStatus.OK and not result.constrained and result.reward is None


def test_http_backend_sends_the_grammar_and_serve_applies_it(tiny_chat_model):
    with running_uvicorn(build_app(tiny_chat_model, "tiny-critic")) as url:
        constrained = OpenAICritic(OpenAICriticConfig(
            base_url=url, tasks=("t2i", "edit"), constrained=True, grammar_caps=CAPS,
            max_new_tokens=max(budget(t) for t in Task), temperature=1.0, seed=5))
        for request in (T2I, EDIT):
            assert_well_formed(constrained.critique(request), request.task)
        streamed = list(constrained.stream(T2I))
        assert_well_formed(streamed[-1], Task.T2I)

        plain = OpenAICritic(OpenAICriticConfig(base_url=url, tasks=("t2i",), max_new_tokens=64))
        assert plain.critique(T2I).status is not ParseStatus.OK


def test_serve_rejects_a_grammar_that_does_not_compile(tiny_chat_model):
    with running_uvicorn(build_app(tiny_chat_model, "tiny-critic")) as url:
        body = {"model": "tiny-critic", "max_tokens": 8,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                          {"type": "image_url",
                                                           "image_url": {"url": data_url(gradient(32, 32))}}]}],
                "structured_outputs": {"grammar": "root ::= ( unclosed"}}
        response = httpx.post(f"{url}/chat/completions", json=body, timeout=30)
        assert response.status_code == 400 and "grammar" in response.json()["error"]["message"]
        body["structured_outputs"] = {"grammar": critique_grammar(Task.T2I, "pointwise", SectionCaps(**CAPS))}
        body["max_tokens"] = budget(Task.T2I)
        response = httpx.post(f"{url}/chat/completions", json=body, timeout=120)
        assert response.status_code == 200
        assert response.json()["choices"][0]["finish_reason"] == "stop"
