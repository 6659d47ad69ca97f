"""An OpenAI-compatible critic server over the in-process transformers backend.

    python -m rr_core.serve --model TIGER-Lab/RationalRewards-8B-T2I --port 8000

Serves `POST /v1/chat/completions` (JSON or SSE streaming) and `GET /v1/models`, the subset of the
API the RationalRewards clients use (vLLM's interface), so the app, the training scripts and
`OpenAICritic` work the same against this server and against vLLM. Concurrent requests that arrive
within `--batch-window-ms` of each other (up to `--max-batch`) and ask for equal decode settings are
decoded as one batch (rr_core.critics.batching.RequestBatcher); each caller still gets its own
answer or SSE stream, and greedy answers are exactly what the request gets alone. Requests with and
without a grammar share a batch (rows without one are unconstrained). A sampled request with a seed
decodes alone, so its seed reproduces its answer. Use vLLM when throughput matters most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import queue
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rr_core.critics.base import DecodeSettings, Generation
from rr_core.critics.batching import BatchItem, RequestBatcher, row_splitter
from rr_core.critics.constrained import GrammarLogitsProcessor
from rr_core.critics.chat_model import DTYPES, QUANTIZATIONS, ChatModel
from rr_core.critics.transformers_critic import TransformersCriticConfig
from rr_core.errors import InvalidImage, InvalidRequest
from rr_core.grammar import compile_ebnf, grammar_from_request
from rr_core.images import decode_data_url
from rr_core.model_identity import artefact_id

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 2048
DEFAULT_BATCH_WINDOW_MS = 20.0
DEFAULT_MAX_BATCH = 8


class BadRequest(ValueError):
    """A request this server cannot serve; answered with `status` and the message, as OpenAI does."""

    status = 400
    kind = "invalid_request_error"


class UnknownModel(BadRequest):
    status = 404
    kind = "NotFoundError"


@dataclass
class ChatRequest:
    """A parsed /v1/chat/completions body: transformers chat messages plus decoding settings."""

    model: str
    messages: list[dict]
    settings: DecodeSettings
    stream: bool = False
    include_usage: bool = False
    grammar: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _content_parts(content: Any) -> list[dict] | str:
    """OpenAI content (a string, or text and image_url parts) as transformers chat content."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest("message content must be a string or a list of parts")
    parts: list[dict] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str):
                raise BadRequest("an image_url part needs image_url.url")
            try:
                parts.append({"type": "image", "image": decode_data_url(url)})
            except InvalidImage as exc:
                raise BadRequest(str(exc)) from exc
        else:
            raise BadRequest(f"unsupported content part type {kind!r} (text and image_url are supported)")
    return parts


def parse_chat_request(body: Any, served_model_name: str) -> ChatRequest:
    """Check and convert a request body; the one place new request fields (e.g. a grammar) go."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model") or served_model_name
    if model != served_model_name:
        raise UnknownModel(f"The model {model!r} does not exist; this server serves {served_model_name!r}.")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages must be a non-empty list")
    messages = []
    for message in raw_messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise BadRequest("each message needs a role of system, user or assistant")
        messages.append({"role": message["role"], "content": _content_parts(message.get("content", ""))})
    if body.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported")
    try:
        settings = DecodeSettings(
            max_new_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS),
            temperature=float(body.get("temperature") if body.get("temperature") is not None else 1.0),
            top_p=float(body.get("top_p") if body.get("top_p") is not None else 1.0),
            seed=int(body["seed"]) if body.get("seed") is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"invalid sampling settings: {exc}") from exc
    try:
        grammar = grammar_from_request(body)
    except InvalidRequest as exc:
        raise BadRequest(str(exc)) from exc
    options = body.get("stream_options") or {}
    return ChatRequest(model=model, messages=messages, settings=settings, stream=bool(body.get("stream")),
                       include_usage=bool(options.get("include_usage")) if isinstance(options, dict) else False,
                       grammar=grammar)


def compiled_request_grammar(chat_model: ChatModel, request: ChatRequest) -> Any:
    """The grammar a request carried (vLLM structured outputs), compiled for the model; None without one.

    A grammar that does not compile raises BadRequest (HTTP 400) before the request joins a batch.
    """
    if request.grammar is None:
        return None
    try:
        return compile_ebnf(chat_model.processor, request.grammar,
                            vocab_size=chat_model.model.config.get_text_config().vocab_size,
                            stop_token_ids=sorted(chat_model.eos_ids))
    except InvalidRequest as exc:
        raise BadRequest(str(exc)) from exc


@dataclass
class _Job:
    """What one queued request needs for its row of a batch."""

    request: ChatRequest
    grammar: Any = None


def batch_key(settings: DecodeSettings) -> Any:
    """Requests with equal keys may share a decode: equal settings, except that a seeded sampled
    request gets a key of its own (in a batch its seed would not reproduce its solo answer)."""
    if settings.seed is not None and not settings.greedy:
        return object()
    return settings


class ChatBatcher:
    """Decodes queued chat requests that share decode settings in one `ChatModel.complete` call.

    Streams and plain requests mix in a batch: a row splitter gives every streaming caller its own
    text deltas. Grammar rows and free rows mix too (one GrammarLogitsProcessor, None for free rows).
    """

    def __init__(self, chat_model: ChatModel, window_s: float = DEFAULT_BATCH_WINDOW_MS / 1000,
                 max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.chat_model = chat_model
        self.batcher = RequestBatcher(self._run_batch, window_s, max_batch, name="serve-batcher")

    def submit(self, request: ChatRequest, grammar: Any = None) -> BatchItem:
        """Queue a request; await `item.result` (a Generation) or iterate `item.stream()`."""
        return self.batcher.submit(BatchItem(_Job(request, grammar), key=batch_key(request.settings),
                                             deltas=queue.Queue() if request.stream else None))

    def _run_batch(self, batch: list[BatchItem]) -> list[Generation]:
        chat_model = self.chat_model
        jobs = [item.payload for item in batch]
        grammars = [job.grammar for job in jobs]
        processors = []
        if any(grammar is not None for grammar in grammars):
            processors = [GrammarLogitsProcessor(grammars, len(batch), stop_token_ids=sorted(chat_model.eos_ids))]
        extra = None
        if any(item.deltas is not None for item in batch):
            extra = {"streamer": row_splitter(chat_model, batch)}
        return chat_model.complete([job.request.messages for job in jobs], jobs[0].request.settings,
                                   processors, extra)


def _usage(generation: Generation) -> dict[str, int]:
    prompt, completion = generation.prompt_tokens or 0, generation.completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})


def _sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def _stream_events(request: ChatRequest, items: Iterator[str | Generation]) -> Iterator[str]:
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish_reason: str | None = None) -> dict:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": request.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    yield _sse(chunk({"role": "assistant", "content": ""}))
    for item in items:
        if isinstance(item, Generation):
            yield _sse(chunk({}, item.finish_reason))
            if request.include_usage:
                yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                            "model": request.model, "choices": [], "usage": _usage(item)})
        else:
            yield _sse(chunk({"content": item}))
    yield _sse("[DONE]")


def build_app(chat_model: ChatModel, served_model_name: str, batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS,
              max_batch: int = DEFAULT_MAX_BATCH) -> FastAPI:
    """The FastAPI app serving `chat_model` under `served_model_name` (tests build it directly).

    Requests arriving within `batch_window_ms` of the first (up to `max_batch`) share a decode;
    `app.state.batcher` is the ChatBatcher doing it.
    """
    if batch_window_ms < 0:
        raise ValueError(f"batch_window_ms must be >= 0, got {batch_window_ms}")
    batcher = ChatBatcher(chat_model, batch_window_ms / 1000, max_batch)
    app = FastAPI(title="RationalRewards critic server")
    app.state.batcher = batcher
    created = int(time.time())

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": served_model_name, "object": "model", "created": created,
                                            "owned_by": "rationalrewards-studio"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(http_request: Request):
        try:
            body = await http_request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body is not valid JSON")
        try:
            request = parse_chat_request(body, served_model_name)
            grammar = await run_in_threadpool(compiled_request_grammar, chat_model, request)
        except BadRequest as exc:
            return _error(exc.status, str(exc), exc.kind)
        item = batcher.submit(request, grammar)
        if request.stream:
            return StreamingResponse(_stream_events(request, item.stream()), media_type="text/event-stream")
        generation = await asyncio.wrap_future(item.result)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": request.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": generation.text},
                         "finish_reason": generation.finish_reason}],
            "usage": _usage(generation),
        }

    return app


def served_name(model: str, adapter: str = "", explicit: str = "") -> str:
    """The model id the server reports: the name given, else the adapter's artefact id (folder name
    plus content hash, so a student's critiques are recorded apart from its base's), else the model."""
    if explicit:
        return explicit
    if adapter:
        return artefact_id(adapter)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rr_core.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face id or local folder of a Qwen3-VL critic")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dtype", default="auto", choices=DTYPES)
    parser.add_argument("--quantization", default="none", choices=QUANTIZATIONS)
    parser.add_argument("--device-map", default="", help="accelerate device map (default: auto on CUDA)")
    parser.add_argument("--max-image-pixels", type=int, default=0, help="processor pixel budget per image")
    parser.add_argument("--served-model-name", default="",
                        help="the model id clients send and the app records (default: the adapter's name and "
                             "content hash with --adapter, else --model)")
    parser.add_argument("--adapter", default="", help="a LoRA adapter folder (e.g. a PARROT student) over --model")
    parser.add_argument("--batch-window-ms", type=float, default=DEFAULT_BATCH_WINDOW_MS,
                        help="how long a request waits for others to share its decode (0: no wait)")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help="the most requests decoded together (1: one at a time)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import uvicorn

    config = TransformersCriticConfig(model=args.model, dtype=args.dtype, quantization=args.quantization,
                                      device_map=args.device_map, max_image_pixels=args.max_image_pixels,
                                      adapter=args.adapter)
    name = served_name(args.model, args.adapter, args.served_model_name)
    app = build_app(ChatModel.load(config), name,
                    batch_window_ms=args.batch_window_ms, max_batch=args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
