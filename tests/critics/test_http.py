"""The OpenAI-compatible path: rr_core.serve over the tiny model, OpenAICritic, and misbehaving peers."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from rr_core.critics.base import CritiqueRequest
from rr_core.critics.openai_critic import OpenAICritic, OpenAICriticConfig
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.critique import ParseStatus
from rr_core.errors import CriticUnavailable
from rr_core.images import data_url
from rr_core.rubric import Task
from rr_core.serve import build_app
from tests import critique_texts as texts
from tests.critics.conftest import gradient, solid
from tests.critics.servers import MisbehavingPeer, answer, free_port, running_uvicorn

REQUEST = CritiqueRequest(Task.T2I, "a lighthouse on a cliff at sunset", gradient(120, 80))
EDIT = CritiqueRequest(Task.EDIT, "make the car red", gradient(64, 64), source_image=solid(64, 64, (0, 0, 200)))


def fast_config(url: str, **overrides) -> OpenAICriticConfig:
    values = {"base_url": url, "model": "peer", "timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01}
    return OpenAICriticConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def serve_url(tiny_chat_model):
    with running_uvicorn(build_app(tiny_chat_model, "tiny-critic")) as url:
        yield url


@pytest.mark.slow
def test_http_critique_matches_the_in_process_critic(serve_url, tiny_chat_model, tiny_critic_path):
    config = OpenAICriticConfig(base_url=serve_url, tasks=("t2i", "edit"), max_new_tokens=30)
    critic = OpenAICritic(config)
    assert critic.model_id == "tiny-critic" and critic.health() == ["tiny-critic"]
    local = TransformersCritic(TransformersCriticConfig(model=str(tiny_critic_path), tasks=("t2i", "edit"),
                                                        max_new_tokens=30), chat_model=tiny_chat_model)
    remote_results = critic.critique_many([REQUEST, EDIT])
    local_results = local.critique_many([REQUEST, EDIT])
    for remote, here in zip(remote_results, local_results):
        assert remote.raw_text == here.raw_text  # greedy, lossless PNG: the same text over HTTP
        assert (remote.prompt_tokens, remote.completion_tokens, remote.truncated) == (
            here.prompt_tokens, here.completion_tokens, here.truncated)
        assert remote.status is ParseStatus.FAILED and remote.reward is None


@pytest.mark.slow
def test_http_streaming(serve_url):
    critic = OpenAICritic(OpenAICriticConfig(base_url=serve_url, max_new_tokens=30))
    items = list(critic.stream(REQUEST))
    assert len(items) > 2
    assert "".join(items[:-1]) == items[-1].raw_text == critic.critique(REQUEST).raw_text
    assert items[-1].completion_tokens == 30 and items[-1].truncated


@pytest.mark.slow
def test_server_speaks_the_openai_wire_format(serve_url):
    models = httpx.get(f"{serve_url}/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny-critic"]
    message = {"role": "user", "content": [{"type": "text", "text": "hi"},
                                           {"type": "image_url", "image_url": {"url": data_url(gradient(40, 40))}}]}
    body = {"model": "tiny-critic", "messages": [message], "max_tokens": 3, "temperature": 0}
    reply = httpx.post(f"{serve_url}/chat/completions", json=body, timeout=30).json()
    assert reply["choices"][0]["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 3
    with httpx.stream("POST", f"{serve_url}/chat/completions", timeout=30,
                      json={**body, "stream": True, "stream_options": {"include_usage": True}}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == \
        reply["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert httpx.post(f"{serve_url}/chat/completions", json={**body, "model": "other"}).status_code == 404
    bad_image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    refused = httpx.post(f"{serve_url}/chat/completions", json={**body, "messages": [bad_image]})
    assert refused.status_code == 400 and "image" in refused.json()["error"]["message"]


def test_retry_after_a_500_succeeds():
    with MisbehavingPeer([(500, "{}", 0.0), (200, answer(texts.T2I_OK), 0.0)]) as peer:
        critique = OpenAICritic(fast_config(peer.url)).critique(REQUEST)
    assert critique.status is ParseStatus.OK and len(peer.requests) == 2
    assert (critique.prompt_tokens, critique.completion_tokens) == (10, 5)


def test_always_500_raises_unavailable_naming_the_url():
    with MisbehavingPeer([(503, "{}", 0.0)]) as peer, \
            pytest.raises(CriticUnavailable, match=peer.url.replace(".", r"\.")):
        OpenAICritic(fast_config(peer.url)).critique(REQUEST)
    assert len(peer.requests) == 3


def test_a_4xx_is_not_retried_and_gives_a_failed_critique():
    with MisbehavingPeer([(400, '{"error": {"message": "prompt too long"}}', 0.0)]) as peer:
        critique = OpenAICritic(fast_config(peer.url)).critique(REQUEST)
    assert len(peer.requests) == 1
    assert critique.status is ParseStatus.FAILED and critique.reward is None
    assert "HTTP 400" in critique.error and "prompt too long" in critique.raw_text


def test_a_slow_server_times_out_into_unavailable():
    with MisbehavingPeer([(200, answer(texts.T2I_OK), 4.0)]) as peer:
        started = time.monotonic()
        with pytest.raises(CriticUnavailable, match="timed out"):
            OpenAICritic(fast_config(peer.url, timeout_s=0.3, max_retries=1)).critique(REQUEST)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0, "the 0.3 s deadline covers the whole critique, retries included"
    assert len(peer.requests) == 1, "a timeout spends the deadline: there is no time left to retry"


@pytest.mark.parametrize("body", [
    "this is not json",
    '{"id": "x", "choices": []}',
    '{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]}',
    '{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": null}}]}',
    '[1, 2]',
])
def test_malformed_answers_give_failed_critiques_with_raw_kept(body):
    with MisbehavingPeer([(200, body, 0.0)]) as peer:
        critique = OpenAICritic(fast_config(peer.url)).critique(REQUEST)
    assert critique.status is ParseStatus.FAILED and critique.reward is None
    assert critique.raw_text == body and peer.url in critique.error


def test_truncated_answer_is_never_ok():
    body = answer(texts.T2I_OK).replace('"finish_reason": "stop"', '"finish_reason": "length"')
    with MisbehavingPeer([(200, body, 0.0)]) as peer:
        critique = OpenAICritic(fast_config(peer.url, max_new_tokens=64)).critique(REQUEST)
    assert critique.truncated and critique.status is ParseStatus.PARTIAL


def test_concurrency_and_extra_body():
    with MisbehavingPeer([(200, answer(texts.T2I_OK), 0.3)]) as peer:
        critic = OpenAICritic(fast_config(peer.url, concurrency=4, extra_body={"structured_outputs": {"x": 1}}))
        started = time.monotonic()
        critiques = critic.critique_many([REQUEST] * 4)
        elapsed = time.monotonic() - started
    assert all(c.status is ParseStatus.OK for c in critiques)
    assert elapsed < 1.0, "four 0.3 s requests should overlap"
    assert all(r["structured_outputs"] == {"x": 1} for r in peer.requests)
    assert peer.requests[0]["temperature"] == 0.0 and peer.requests[0]["max_tokens"] == 2048
    image_part = peer.requests[0]["messages"][1]["content"][1]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")


def test_server_down_fails_fast_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(CriticUnavailable, match=url.replace(".", r"\.")):
        OpenAICritic(fast_config(url)).critique(REQUEST)
    with pytest.raises(CriticUnavailable, match=url.replace(".", r"\.")):
        OpenAICritic(fast_config(url, model=""))
    assert time.monotonic() - started < 3


def test_config_from_env(monkeypatch):
    monkeypatch.setenv("RR_CRITIC_URL", "http://critic.local:8000")
    monkeypatch.setenv("RR_CRITIC_MODEL", "rr-t2i")
    monkeypatch.setenv("RR_CRITIC_API_KEY", "secret")
    config = OpenAICriticConfig.from_env(concurrency=2)
    assert (config.base_url, config.model, config.api_key, config.concurrency) == (
        "http://critic.local:8000/v1", "rr-t2i", "secret", 2)
    monkeypatch.delenv("RR_CRITIC_URL")
    with pytest.raises(ValueError, match="RR_CRITIC_URL"):
        OpenAICriticConfig.from_env()
    with pytest.raises(ValueError, match="Unknown OpenAICriticConfig setting"):
        OpenAICriticConfig.from_dict({"base_url": "http://x", "retries": 3})
