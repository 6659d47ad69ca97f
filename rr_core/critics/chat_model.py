"""A loaded chat VLM (Qwen3-VL / Qwen2.5-VL) that turns chat messages into generations.

Shared by the in-process critic (`rr_core.critics.transformers_critic`), the OpenAI-compatible
server (`rr_core.serve`) and the benchmarks: loading (dtype, bitsandbytes quantization, a LoRA
adapter), left-padded batched decoding, token streaming and the fast decode path live here once,
with no critique protocol in them. Batches are left-padded so every row's new tokens start at the
same column; greedy decoding (the default) makes an answer reproducible.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rr_core.critics.base import DecodeSettings, Generation
from rr_core.critics.fast_decode import FastDecoder
from rr_core.errors import model_unavailable

if TYPE_CHECKING:
    from rr_core.critics.transformers_critic import TransformersCriticConfig

logger = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
QUANTIZATIONS = ("none", "8bit", "4bit")
# Modules left in full precision when quantizing: the vision tower (small, sensitive) and the head.
# transformers 5 matches a pattern from the start of the module name or as its suffix (older versions
# as a substring), hence both spellings of the vision tower.
QUANT_SKIP_MODULES = ["model.visual", "visual", "lm_head"]

def load_model_and_processor(config: TransformersCriticConfig):
    """Load through the same `from_pretrained` path for hub ids, local checkpoints and the tiny model."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    if config.dtype == "auto":
        dtype = torch.bfloat16 if cuda else torch.float32
    else:
        dtype = getattr(torch, config.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": config.device_map or ("auto" if cuda else "cpu")}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    if config.quantization == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=QUANT_SKIP_MODULES,
        )
    elif config.quantization == "8bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_skip_modules=QUANT_SKIP_MODULES,
        )
    logger.info("loading critic %s (%s, quantization %s)", config.model_name, dtype, config.quantization)
    try:
        model = AutoModelForImageTextToText.from_pretrained(config.model_name, **kwargs).eval()
    except OSError as exc:  # not downloaded and no hub, a wrong id or path
        raise model_unavailable(config.model_name, "critic", exc, "RR_CRITIC_T2I_MODEL / RR_CRITIC_EDIT_MODEL") from exc
    if config.adapter:
        model = _apply_adapter(model, config)
    processor = AutoProcessor.from_pretrained(config.model_name)
    processor.tokenizer.padding_side = "left"
    if config.max_image_pixels:
        size = dict(processor.image_processor.size)
        size["longest_edge"] = config.max_image_pixels
        processor.image_processor.size = size
    return model, processor


def _apply_adapter(model, config: TransformersCriticConfig):
    """The base model with the LoRA adapter: merged when unquantized, else LoRA layers over the quantized weights.

    Either way the result is the plain transformers model (not a PeftModel wrapper), so generation,
    the fast decode path and the quantization checks see the same object type as without an adapter.
    """
    from peft import PeftModel

    logger.info("applying adapter %s to %s", config.adapter, config.model_name)
    peft_model = PeftModel.from_pretrained(model, config.adapter)
    if config.quantization == "none":
        return peft_model.merge_and_unload().eval()
    return peft_model.base_model.model.eval()


WINDOW_TOKENS = 32


class DeltaStreamer:
    """Streams text deltas whose concatenation is the full decode of the generated tokens.

    Each step decodes only a short window of recent tokens (since the last line break, at most about
    WINDOW_TOKENS), so a step costs a few tokens' decode rather than the whole critique's (quadratic
    over 2,048 tokens); a trailing U+FFFD (an incomplete UTF-8 byte sequence the next token may
    complete) is held back. The final Generation's text is always the full decode.
    """

    def __init__(self, tokenizer, eos_ids: set[int], timeout_s: float | None = None) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.timeout_s = timeout_s
        self.tokens: list[int] = []
        self.line_start = 0  # tokens before this index are decoded and emitted for good
        self.line_emitted = ""
        self.done = False
        self.prompt_seen = False
        self.queue: queue.Queue[str | None] = queue.Queue()

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        if self.done:
            return
        for token in value.reshape(-1).tolist():
            if token in self.eos_ids:
                self.done = True
                break
            self.tokens.append(token)
        window = self.tokens[self.line_start:]
        line = self.tokenizer.decode(window, skip_special_tokens=True)
        self._emit(line.rstrip("\ufffd"))
        # Start a new window at a line break, or after WINDOW_TOKENS at a complete character (a
        # byte-level BPE decode splits exactly there; a line break may merge into the next token).
        if line.endswith("\n") or (len(window) >= WINDOW_TOKENS and not line.endswith("\ufffd")):
            self.line_start, self.line_emitted = len(self.tokens), ""

    def end(self) -> None:
        self._emit(self.tokenizer.decode(self.tokens[self.line_start:], skip_special_tokens=True))
        self.queue.put(None)

    def _emit(self, text: str) -> None:
        if len(text) > len(self.line_emitted) and text.startswith(self.line_emitted):
            self.queue.put(text[len(self.line_emitted):])
            self.line_emitted = text

    def __iter__(self) -> Iterator[str]:
        while True:
            delta = self.queue.get(timeout=self.timeout_s)
            if delta is None:
                return
            yield delta


class ChatModel:
    """A loaded VLM that turns chat messages into generations; shared by the critic and the server.

    A lock serializes calls, so threads (server requests, a UI) can share one model safely.
    """

    def __init__(self, model, processor) -> None:
        self.model = model
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"
        self.eos_ids = _eos_ids(model.generation_config, processor.tokenizer)
        self.pad_id = _pad_id(model.generation_config, processor.tokenizer)
        self.lock = threading.Lock()
        self.fast: FastDecoder | None = None
        self.generate_calls = 0

    @classmethod
    def load(cls, config: TransformersCriticConfig) -> ChatModel:
        return cls(*load_model_and_processor(config))

    def complete(self, chats: Sequence[list[dict]], settings: DecodeSettings,
                 logits_processors: Sequence = (), extra: dict[str, Any] | None = None) -> list[Generation]:
        """One left-padded batch: encode, decode, cut each row at its end token."""
        inputs = self.encode(chats)
        kwargs = self.generate_kwargs(inputs, settings, logits_processors, extra)
        with self.lock:
            start = time.perf_counter()
            sequences = self._run(kwargs, settings)
            latency_s = time.perf_counter() - start
        return self.finish(inputs, sequences, latency_s)

    def stream(self, chat: list[dict], settings: DecodeSettings, logits_processors: Sequence = (),
               extra: dict[str, Any] | None = None) -> Iterator[str | Generation]:
        """Decode in a worker thread; yield text deltas, then the finished Generation."""
        inputs = self.encode([chat])
        streamer = DeltaStreamer(self.processor.tokenizer, self.eos_ids)
        kwargs = self.generate_kwargs(inputs, settings, logits_processors, extra)
        kwargs["streamer"] = streamer
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                with self.lock:
                    outcome["start"] = time.perf_counter()
                    outcome["sequences"] = self._run(kwargs, settings)
                    outcome["latency_s"] = time.perf_counter() - outcome["start"]
            except BaseException as exc:  # re-raised in the caller's thread below
                outcome["error"] = exc
                streamer.queue.put(None)

        worker = threading.Thread(target=work, name="critic-stream", daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        yield self.finish(inputs, outcome["sequences"], outcome["latency_s"])[0]

    def encode(self, chats: Sequence[list[dict]]):
        """Chat template + image processing for a left-padded batch, on the model's device."""
        texts = [self.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
                 for chat in chats]
        images = [part["image"] for chat in chats for message in chat
                  if not isinstance(message["content"], str)
                  for part in message["content"] if part.get("type") == "image"]
        batch = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        return batch.to(self.model.device)

    def generation_config(self, settings: DecodeSettings):
        """The checkpoint's generation config with `settings` on top."""
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = settings.max_new_tokens
        config.eos_token_id = sorted(self.eos_ids)
        config.pad_token_id = self.pad_id
        config.do_sample = not settings.greedy
        if settings.greedy:
            config.temperature, config.top_p, config.top_k = None, None, None
        else:
            config.temperature, config.top_p = settings.temperature, settings.top_p
        return config

    def generate_kwargs(self, inputs, settings: DecodeSettings, logits_processors: Sequence = (),
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything `model.generate` receives: the inputs, the generation config, extra processors."""
        from transformers import LogitsProcessorList

        kwargs: dict[str, Any] = dict(inputs)
        config = self.generation_config(settings)
        for key, value in (extra or {}).items():
            if hasattr(config, key):
                setattr(config, key, value)  # generation settings belong in the config, not beside it
            else:
                kwargs[key] = value
        kwargs["generation_config"] = config
        if logits_processors:
            kwargs["logits_processor"] = LogitsProcessorList(list(logits_processors))
        return kwargs

    def enable_fast_decode(self, mode: str) -> FastDecoder:
        """The decode path of later calls ("off" = plain generate); one per model, kept while the mode stays."""
        if self.fast is None or self.fast.requested != mode:
            self.fast = FastDecoder(self.model, mode, stop_id=min(self.eos_ids))
        return self.fast

    def _run(self, kwargs: dict[str, Any], settings: DecodeSettings):
        """Call `model.generate` (under the lock), through the fast path when one is active."""
        import torch

        self.generate_calls += 1
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        fast = self.fast
        with torch.inference_mode():
            if fast is None or not fast.active:
                return self.model.generate(**kwargs)
            fast_kwargs, rows = fast.prepare(kwargs)
            try:
                return self.model.generate(**fast_kwargs)[:rows]
            except Exception as error:  # a compile or capture error: the plain path gives the same tokens
                if fast.mode != "compiled":
                    raise
                fast.fall_back(error)
                if "streamer" in kwargs:  # it has seen part of this decode; later calls take the plain path
                    raise
                return self.model.generate(**kwargs)

    def finish(self, inputs, sequences, latency_s: float) -> list[Generation]:
        """Cut each row at its first end token; a row that never ended hit max_new_tokens."""
        prompt_length = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, n_prompt in zip(sequences[:, prompt_length:].tolist(), prompt_tokens):
            end = next((i for i, token in enumerate(row) if token in self.eos_ids), None)
            tokens = row if end is None else row[:end]
            results.append(Generation(
                text=self.processor.tokenizer.decode(tokens, skip_special_tokens=True),
                prompt_tokens=int(n_prompt),
                completion_tokens=len(tokens) if end is None else end + 1,
                finish_reason="length" if end is None else "stop",
                latency_s=latency_s,
            ))
        return results


def _eos_ids(generation_config, tokenizer) -> set[int]:
    eos = generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = {eos} if isinstance(eos, int) else set(eos or [])
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    if not ids:
        raise ValueError("the checkpoint defines no end-of-sequence token")
    return ids


def _pad_id(generation_config, tokenizer) -> int:
    for candidate in (generation_config.pad_token_id, tokenizer.pad_token_id):
        if candidate is not None:
            return int(candidate)
    return min(_eos_ids(generation_config, tokenizer))
