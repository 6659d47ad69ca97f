"""A critic behind an OpenAI-compatible `/v1/chat/completions` server (vLLM, `rr_core.serve`, ...).

Failures are sorted by who can fix them: timeouts, refused connections and 5xx answers are retried
with exponential backoff and then raise CriticUnavailable naming the URL (the server is down);
a 4xx answer or a reply that is not a usable completion gives a failed critique that keeps the
raw answer (this request is the problem, or the peer is broken): never a crash, never a score.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import openai

from rr_core.config import from_dict
from rr_core.critics.base import Critic, DecodeSettings, Generation
from rr_core.errors import CriticUnavailable
from rr_core.prompts import Conversation
from rr_core.rubric import Task

logger = logging.getLogger(__name__)

_RETRYABLE = (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError)


@dataclass
class OpenAICriticConfig:
    """How to reach a critic server.

    base_url: the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1 ("/v1" is added when the
        URL has no path).
    model: the served model name (vLLM's --served-model-name); empty means the first model the
        server lists.
    tasks: which tasks the served checkpoint judges.
    api_key: sent as a bearer token (vLLM's --api-key); servers without auth ignore it.
    timeout_s: per attempt; max_retries: extra attempts after a timeout, refused connection or 5xx;
    backoff_s: the first wait between attempts, doubled each time.
    concurrency: requests in flight at once in `critique_many` (the server batches them).
    max_new_tokens, temperature, top_p, seed: decoding (temperature 0 is greedy).
    extra_body: extra JSON fields for every request.
    constrained: send the critique grammar as vLLM structured outputs (rr_core.serve accepts it too),
        so every critique parses; grammar_caps: its per-section character caps (SectionCaps fields);
        legacy_grammar: use the pre-0.12 vLLM field `guided_grammar` instead.
    prompt_templates: your own prompt template files (assets/prompts format), each replacing the
        shipped template of the task and mode it names.
    """

    base_url: str
    model: str = ""
    tasks: tuple[str, ...] = ("t2i",)
    api_key: str = "EMPTY"
    timeout_s: float = 300.0
    max_retries: int = 3
    backoff_s: float = 1.0
    concurrency: int = 8
    max_new_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    constrained: bool = False
    grammar_caps: dict[str, int | None] | None = None
    legacy_grammar: bool = False
    prompt_templates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("base_url is empty: give the critic server's URL, e.g. http://127.0.0.1:8000/v1")
        url = self.base_url.rstrip("/")
        if url.count("/") == 2:
            url += "/v1"
        self.base_url = url
        self.tasks = tuple(Task.parse(t).value for t in self.tasks)
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0 or self.concurrency < 1:
            raise ValueError("timeout_s and concurrency must be positive, max_retries and backoff_s >= 0")
        self.decode_settings()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenAICriticConfig:
        """Build from a mapping (command line, YAML); unknown keys are rejected, not ignored."""
        return from_dict(cls, data, "OpenAICriticConfig")

    @classmethod
    def from_env(cls, **overrides: Any) -> OpenAICriticConfig:
        """RR_CRITIC_URL (required), RR_CRITIC_MODEL and RR_CRITIC_API_KEY, then `overrides`."""
        values: dict[str, Any] = {}
        for key, env in (("base_url", "RR_CRITIC_URL"), ("model", "RR_CRITIC_MODEL"),
                         ("api_key", "RR_CRITIC_API_KEY")):
            if os.environ.get(env):
                values[key] = os.environ[env]
        values.update(overrides)
        if not values.get("base_url"):
            raise ValueError("set RR_CRITIC_URL to the critic server's URL, e.g. http://127.0.0.1:8000/v1")
        return cls.from_dict(values)

    def decode_settings(self) -> DecodeSettings:
        return DecodeSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                              top_p=self.top_p, seed=self.seed)


class OpenAICritic(Critic):
    """Critiques from a remote server; `critique_many` keeps up to `concurrency` requests in flight.

    Extension point: `_extra_body(conversation)` adds JSON fields to a request (e.g. a grammar).
    """

    def __init__(self, config: OpenAICriticConfig) -> None:
        self.config = config
        self.client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key,
                                    timeout=config.timeout_s, max_retries=0)
        model = config.model or self._first_served_model()
        super().__init__(model, config.tasks, config.decode_settings(), config.prompt_templates,
                         config.constrained)

    @property
    def url(self) -> str:
        return self.config.base_url

    def health(self) -> list[str]:
        """The model ids the server serves (GET /v1/models); CriticUnavailable when it cannot say."""
        try:
            models = self.client.models.list()
            return [m.id for m in models.data]
        except (openai.APIError, ValueError, TypeError, AttributeError) as exc:
            raise CriticUnavailable(f"The critic server at {self.url} did not answer GET /models: {exc}") from exc

    # --- Critic interface ----------------------------------------------------------------------

    def complete(self, conversations: Sequence[Conversation]) -> list[Generation]:
        if len(conversations) <= 1 or self.config.concurrency == 1:
            return [self._complete(c) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(conversations)),
                                thread_name_prefix="critic-http") as pool:
            return list(pool.map(self._complete, conversations))

    def complete_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        """Deltas from an SSE stream; a broken stream ends in a failed generation keeping the text so far."""
        start = time.perf_counter()
        stream = self._with_retries(lambda: self.client.chat.completions.create(
            **self._request_kwargs(conversation), stream=True, stream_options={"include_usage": True}))
        parts: list[str] = []
        finish_reason, usage, error = None, None, ""
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    delta = getattr(choice.delta, "content", None) if choice.delta else None
                    if delta:
                        parts.append(delta)
                        yield delta
                    finish_reason = choice.finish_reason or finish_reason
        except (openai.APIError, json.JSONDecodeError, ValueError, AttributeError) as exc:
            error = f"the stream from {self.url} broke off: {exc}"
        text = "".join(parts)
        if not error and finish_reason is None:
            error = f"the stream from {self.url} ended without a finish_reason"
        if not error and not text:
            error = f"the critic server at {self.url} returned an empty answer"
        yield Generation(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            finish_reason="length" if finish_reason == "length" else "stop",
            latency_s=time.perf_counter() - start,
            error=error,
        )

    # --- one request ---------------------------------------------------------------------------

    def _request_kwargs(self, conversation: Conversation) -> dict[str, Any]:
        """The chat.completions arguments for one conversation; the one place requests are assembled."""
        settings = self.settings
        kwargs: dict[str, Any] = {
            "model": self.model_id,
            "messages": conversation.to_openai(),
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        }
        if settings.seed is not None:
            kwargs["seed"] = settings.seed
        extra = self._extra_body(conversation)
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def _extra_body(self, conversation: Conversation) -> dict[str, Any]:
        """Extra JSON fields for this request: the config's `extra_body`, plus the grammar when constrained."""
        body = dict(self.config.extra_body)
        if self.config.constrained and conversation.task is not None:
            from rr_core.grammar import SectionCaps, vllm_extra_body

            caps = SectionCaps(**self.config.grammar_caps) if self.config.grammar_caps else SectionCaps()
            body.update(vllm_extra_body(conversation.task, conversation.mode or "pointwise", caps,
                                        legacy=self.config.legacy_grammar))
        return body

    def _complete(self, conversation: Conversation) -> Generation:
        start = time.perf_counter()
        kwargs = self._request_kwargs(conversation)
        try:
            raw = self._with_retries(lambda: self.client.chat.completions.with_raw_response.create(**kwargs))
        except openai.APIStatusError as exc:
            body = exc.response.text if exc.response is not None else ""
            return Generation(text=body, latency_s=time.perf_counter() - start,
                              error=f"the critic server at {self.url} refused the request "
                                    f"(HTTP {exc.status_code}): {exc.message}")
        return _read_completion(raw.http_response.text, self.url, time.perf_counter() - start)

    def _with_retries(self, call):
        """Run `call`, retrying timeouts, refused connections and 5xx with exponential backoff."""
        attempts = self.config.max_retries + 1
        attempt = 0
        while True:
            try:
                return call()
            except _RETRYABLE as exc:
                attempt += 1
                if attempt == attempts:
                    raise CriticUnavailable(
                        f"The critic server at {self.url} is unavailable after {attempts} attempts: "
                        f"{_describe(exc)}"
                    ) from exc
                wait = self.config.backoff_s * 2 ** (attempt - 1)
                logger.warning("critic server %s failed (%s); retrying in %.1f s", self.url, _describe(exc), wait)
                time.sleep(wait)

    def _first_served_model(self) -> str:
        served = self.health()
        if not served:
            raise CriticUnavailable(f"The critic server at {self.url} serves no model.")
        return served[0]


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return f"{exc.__class__.__name__}: {exc}"


def _read_completion(body: str, url: str, latency_s: float) -> Generation:
    """A Generation from a raw chat.completion body; anything unusable keeps the body as the raw text."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        return Generation(text=body, latency_s=latency_s,
                          error=f"the critic server at {url} sent a malformed answer ({exc.__class__.__name__})")
    if not isinstance(content, str) or not content.strip():
        return Generation(text=body, latency_s=latency_s,
                          error=f"the critic server at {url} returned an empty answer")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Generation(
        text=content,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        latency_s=latency_s,
    )
