"""A critic behind an OpenAI-compatible `/v1/chat/completions` server (vLLM, `rr_core.serve`, ...).

Every wait is bounded. A critique has one total deadline (`timeout_s`) that covers connecting, waiting
for the first token, reading the whole answer, every retry and every backoff between them: a server
that hangs, or trickles a keep-alive byte now and then, is cut off when the deadline passes, never
later. The start-up check (GET /models) has its own short deadline. A cancel event passed to
`critique_many` or `stream` abandons the request in flight within a fraction of a second, closing the
connection so the server can stop decoding.

Failures are sorted by who can fix them: a refused connection, a dropped connection or a 5xx answer
is retried (at most `max_retries` times, within the deadline) and then raises CriticUnavailable
naming the URL; a deadline that passes raises CriticTimedOut naming the URL and the stage that was
waiting; a 4xx answer or a reply that is not a usable completion gives a failed critique that keeps
the raw answer (this request is the problem, or the peer is broken). Never a crash, never a score.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from rr_core.config import from_dict
from rr_core.critics.base import Critic, DecodeSettings, Generation
from rr_core.critics.deadline import BoundedLoop, CritiqueCancelled, Deadline, DeadlinePassed
from rr_core.errors import CriticUnavailable
from rr_core.prompts import Conversation
from rr_core.rubric import Task

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_RETRIES = 2
TIMEOUT_ENV = "RR_CRITIC_TIMEOUT"
RETRIES_ENV = "RR_CRITIC_RETRIES"

__all__ = ["CriticTimedOut", "CritiqueCancelled", "OpenAICritic", "OpenAICriticConfig", "transport_from_env"]


class CriticTimedOut(CriticUnavailable):
    """A critique (or the start-up check) did not finish within its deadline; the message names the
    server, the deadline and what was being waited for."""


def transport_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`timeout_s` and `max_retries` from RR_CRITIC_TIMEOUT and RR_CRITIC_RETRIES, where set (checked).

    The one reader of the two variables: presets, the critic factory and the training configs use it.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    raw = (env.get(TIMEOUT_ENV) or "").strip()
    if raw:
        try:
            values["timeout_s"] = float(raw)
        except ValueError:
            raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
        if not values["timeout_s"] > 0:
            raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    raw = (env.get(RETRIES_ENV) or "").strip()
    if raw:
        try:
            values["max_retries"] = int(raw)
        except ValueError:
            raise ValueError(f"{RETRIES_ENV} must be a whole number of retries, got {raw!r}") from None
        if values["max_retries"] < 0:
            raise ValueError(f"{RETRIES_ENV} must be >= 0, got {raw!r}")
    return values


@dataclass
class OpenAICriticConfig:
    """How to reach a critic server.

    base_url: the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1 ("/v1" is added when the
        URL has no path).
    model: the served model name (vLLM's --served-model-name); empty means the first model the
        server lists.
    tasks: which tasks the served checkpoint judges.
    api_key: sent as a bearer token (vLLM's --api-key); servers without auth ignore it.
    timeout_s: the TOTAL deadline of one critique: connecting, the first token, the whole answer, and
        every retry and backoff (flag --critic-timeout, env RR_CRITIC_TIMEOUT).
    max_retries: extra attempts after a refused or dropped connection or a 5xx, while the deadline
        allows (flag --critic-retries, env RR_CRITIC_RETRIES); backoff_s: the first wait between
        attempts, doubled each time.
    health_timeout_s: the deadline of the start-up check GET /models (never longer than timeout_s).
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
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_RETRIES
    backoff_s: float = 1.0
    health_timeout_s: float = 10.0
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
        if not (self.timeout_s > 0 and self.health_timeout_s > 0):
            raise ValueError(f"the critic timeout must be a positive number of seconds, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"the critic's retries must be >= 0, got {self.max_retries}")
        if self.backoff_s < 0 or self.concurrency < 1:
            raise ValueError("concurrency must be positive and backoff_s >= 0")
        self.decode_settings()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenAICriticConfig:
        """Build from a mapping (command line, YAML); unknown keys are rejected, not ignored."""
        return from_dict(cls, data, "OpenAICriticConfig")

    @classmethod
    def from_env(cls, **overrides: Any) -> OpenAICriticConfig:
        """RR_CRITIC_URL (required), RR_CRITIC_MODEL, RR_CRITIC_API_KEY, RR_CRITIC_TIMEOUT and
        RR_CRITIC_RETRIES, then `overrides`."""
        values: dict[str, Any] = {}
        for key, env in (("base_url", "RR_CRITIC_URL"), ("model", "RR_CRITIC_MODEL"),
                         ("api_key", "RR_CRITIC_API_KEY")):
            if os.environ.get(env):
                values[key] = os.environ[env]
        values.update(transport_from_env())
        values.update(overrides)
        if not values.get("base_url"):
            raise ValueError("set RR_CRITIC_URL to the critic server's URL, e.g. http://127.0.0.1:8000/v1")
        return cls.from_dict(values)

    def decode_settings(self) -> DecodeSettings:
        return DecodeSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                              top_p=self.top_p, seed=self.seed)


class _Retryable(Exception):
    """An attempt that may succeed if tried again: refused or dropped connection, or a 5xx answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Refused(Exception):
    """A 4xx answer: this request is the problem; not retried."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


class _Stage:
    """What a request is waiting for, so a timeout can say so (updated from the connection's trace)."""

    def __init__(self, first: str) -> None:
        self.now = "connecting"
        self.first = first

    async def trace(self, name: str, info: dict) -> None:
        if name == "connection.connect_tcp.complete" and self.now == "connecting":
            self.now = self.first

    def got_data(self) -> None:
        self.now = "reading the answer"


class OpenAICritic(Critic):
    """Critiques from a remote server; `critique_many` keeps up to `concurrency` requests in flight.

    Extension point: `_extra_body(conversation)` adds JSON fields to a request (e.g. a grammar).
    """

    interruptible = True

    def __init__(self, config: OpenAICriticConfig, cancel: threading.Event | None = None) -> None:
        """Connects only when `config.model` is empty (to ask the server which model it serves), within
        `health_timeout_s`; `cancel` abandons that check."""
        self.config = config
        model = config.model or self._first_served_model(cancel)
        super().__init__(model, config.tasks, config.decode_settings(), config.prompt_templates,
                         config.constrained)

    @property
    def url(self) -> str:
        return self.config.base_url

    def health(self, cancel: threading.Event | None = None) -> list[str]:
        """The model ids the server serves (GET /v1/models), within `health_timeout_s`;
        CriticUnavailable (CriticTimedOut) when it cannot say in time."""
        seconds = min(self.config.health_timeout_s, self.config.timeout_s)
        stage = _Stage("waiting for the answer")
        try:
            with BoundedLoop(Deadline(seconds), cancel) as bounded:
                status, body = bounded.run(self._get_models(stage))
        except DeadlinePassed:
            raise CriticTimedOut(f"The critic server at {self.url} did not answer GET /models within "
                                 f"{seconds:g} s (timed out {stage.now}).") from None
        except _Retryable as exc:
            raise CriticUnavailable(f"The critic server at {self.url} did not answer GET /models: {exc.reason}") from None
        try:
            if status != 200:
                raise ValueError(f"HTTP {status}")
            return [str(m["id"]) for m in json.loads(body)["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CriticUnavailable(f"The critic server at {self.url} sent an unusable answer to GET /models: "
                                    f"{exc}") from None

    # --- Critic interface ----------------------------------------------------------------------

    def complete(self, conversations: Sequence[Conversation],
                 cancel: threading.Event | None = None) -> list[Generation]:
        """One generation per conversation, each within its own total deadline; `cancel` abandons them all."""
        if len(conversations) <= 1 or self.config.concurrency == 1:
            return [self._complete(c, cancel) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(conversations)),
                                thread_name_prefix="critic-http") as pool:
            return list(pool.map(lambda c: self._complete(c, cancel), conversations))

    def complete_stream(self, conversation: Conversation,
                        cancel: threading.Event | None = None) -> Iterator[str | Generation]:
        """Deltas from an SSE stream, all within one total deadline. A stream that breaks off ends in a
        failed generation keeping the text so far; a deadline that passes raises CriticTimedOut."""
        start = time.perf_counter()
        deadline = Deadline(self.config.timeout_s)
        payload = {**self._payload(conversation), "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        state: dict[str, Any] = {"finish_reason": None, "usage": None}
        error = ""
        attempt = 0
        while True:
            stage = _Stage("waiting for the first token")
            with BoundedLoop(deadline, cancel) as bounded:
                try:
                    for delta in bounded.iterate(self._stream_deltas(payload, stage, state)):
                        parts.append(delta)
                        yield delta
                    break
                except DeadlinePassed:
                    raise self._timed_out(deadline, stage) from None
                except _Refused as exc:
                    yield Generation(text=exc.body, latency_s=time.perf_counter() - start,
                                     error=f"the critic server at {self.url} refused the request (HTTP {exc.status})")
                    return
                except _Retryable as exc:
                    if parts:
                        error = f"the stream from {self.url} broke off: {exc.reason}"
                        break
                    attempt += 1
                    self._back_off(attempt, exc.reason, deadline, stage, cancel)
                except (json.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
                    error = f"the stream from {self.url} broke off: {exc.__class__.__name__}: {exc}"
                    break
        text = "".join(parts)
        finish_reason, usage = state["finish_reason"], state["usage"] or {}
        if not error and finish_reason is None:
            error = f"the stream from {self.url} ended without a finish_reason"
        if not error and not text:
            error = f"the critic server at {self.url} returned an empty answer"
        yield Generation(
            text=text,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason="length" if finish_reason == "length" else "stop",
            latency_s=time.perf_counter() - start,
            error=error,
        )

    # --- one request ---------------------------------------------------------------------------

    def _payload(self, conversation: Conversation) -> dict[str, Any]:
        """The chat.completions JSON body for one conversation; the one place requests are assembled."""
        settings = self.settings
        payload: dict[str, Any] = {
            "model": self.model_id,
            "messages": conversation.to_openai(),
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        }
        if settings.seed is not None:
            payload["seed"] = settings.seed
        payload.update(self._extra_body(conversation))
        return payload

    def _extra_body(self, conversation: Conversation) -> dict[str, Any]:
        """Extra JSON fields for this request: the config's `extra_body`, plus the grammar when constrained."""
        body = dict(self.config.extra_body)
        if self.config.constrained and conversation.task is not None:
            from rr_core.grammar import SectionCaps, vllm_extra_body

            caps = SectionCaps(**self.config.grammar_caps) if self.config.grammar_caps else SectionCaps()
            body.update(vllm_extra_body(conversation.task, conversation.mode or "pointwise", caps,
                                        legacy=self.config.legacy_grammar))
        return body

    def _complete(self, conversation: Conversation, cancel: threading.Event | None) -> Generation:
        """One critique: attempts with backoff, all inside one total deadline."""
        start = time.perf_counter()
        deadline = Deadline(self.config.timeout_s)
        payload = self._payload(conversation)
        attempt = 0
        while True:
            stage = _Stage("waiting for the answer")
            try:
                with BoundedLoop(deadline, cancel) as bounded:
                    body = bounded.run(self._post(payload, stage))
                return _read_completion(body, self.url, time.perf_counter() - start)
            except DeadlinePassed:
                raise self._timed_out(deadline, stage) from None
            except _Refused as exc:
                return Generation(text=exc.body, latency_s=time.perf_counter() - start,
                                  error=f"the critic server at {self.url} refused the request (HTTP {exc.status}): "
                                        f"{_error_message(exc.body)}")
            except _Retryable as exc:
                attempt += 1
                self._back_off(attempt, exc.reason, deadline, stage, cancel)

    def _back_off(self, attempt: int, reason: str, deadline: Deadline, stage: _Stage,
                  cancel: threading.Event | None) -> None:
        """After failed attempt `attempt`: give up (CriticUnavailable) when the retries are spent, else
        wait the backoff, never past the deadline."""
        attempts = self.config.max_retries + 1
        if attempt >= attempts:
            raise CriticUnavailable(f"The critic server at {self.url} is unavailable after {attempts} "
                                    f"attempt{'s' if attempts > 1 else ''}: {reason}")
        wait = self.config.backoff_s * 2 ** (attempt - 1)
        logger.warning("critic server %s failed (%s); retrying in %.2f s", self.url, reason, wait)
        try:
            deadline.sleep(wait, cancel)
        except DeadlinePassed:
            stage.now = f"between retries (the last attempt: {reason})"
            raise self._timed_out(deadline, stage) from None

    def _timed_out(self, deadline: Deadline, stage: _Stage) -> CriticTimedOut:
        return CriticTimedOut(f"The critic server at {self.url} timed out: the critique did not finish within "
                              f"its {deadline.seconds:g} s deadline (it was {stage.now}).")

    def _client(self) -> httpx.AsyncClient:
        # The deadline is enforced by BoundedLoop; httpx's own per-read timeouts stay out of the way.
        return httpx.AsyncClient(timeout=None, headers={"Authorization": f"Bearer {self.config.api_key}"})

    async def _post(self, payload: dict[str, Any], stage: _Stage) -> str:
        """POST /chat/completions; the raw body of a 2xx answer."""
        async with self._client() as client:
            try:
                async with client.stream("POST", f"{self.url}/chat/completions", json=payload,
                                         extensions={"trace": stage.trace}) as response:
                    chunks = []
                    async for chunk in response.aiter_bytes():
                        stage.got_data()
                        chunks.append(chunk)
                    body = b"".join(chunks).decode("utf-8", errors="replace")
            except httpx.TransportError as exc:
                raise _Retryable(_describe(exc)) from None
        _check_status(response.status_code, body)
        return body

    async def _get_models(self, stage: _Stage) -> tuple[int, str]:
        async with self._client() as client:
            try:
                response = await client.get(f"{self.url}/models", extensions={"trace": stage.trace})
            except httpx.TransportError as exc:
                raise _Retryable(_describe(exc)) from None
        return response.status_code, response.text

    async def _stream_deltas(self, payload: dict[str, Any], stage: _Stage,
                             state: dict[str, Any]) -> AsyncIterator[str]:
        """The content deltas of an SSE answer; records finish_reason and usage into `state`."""
        async with self._client() as client:
            try:
                async with client.stream("POST", f"{self.url}/chat/completions", json=payload,
                                         extensions={"trace": stage.trace}) as response:
                    if response.status_code >= 400:
                        body = (await response.aread()).decode("utf-8", errors="replace")
                        _check_status(response.status_code, body)
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        chunk = json.loads(data)
                        if chunk.get("usage"):
                            state["usage"] = chunk["usage"]
                        for choice in chunk.get("choices") or []:
                            delta = (choice.get("delta") or {}).get("content")
                            state["finish_reason"] = choice.get("finish_reason") or state["finish_reason"]
                            if delta:
                                stage.got_data()
                                yield delta
            except httpx.TransportError as exc:
                raise _Retryable(_describe(exc)) from None

    def _first_served_model(self, cancel: threading.Event | None) -> str:
        served = self.health(cancel)
        if not served:
            raise CriticUnavailable(f"The critic server at {self.url} serves no model.")
        return served[0]


def _check_status(status: int, body: str) -> None:
    if status >= 500:
        raise _Retryable(f"HTTP {status}")
    if status >= 400:
        raise _Refused(status, body)


def _error_message(body: str) -> str:
    """The server's own error message from an OpenAI-style error body, else the body's start."""
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    except (ValueError, AttributeError):
        pass
    return body[:200]


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"connection refused ({exc})" if str(exc) else "connection refused"
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
