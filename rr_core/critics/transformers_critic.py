"""The in-process critic: a Qwen3-VL (or Qwen2.5-VL) checkpoint run with transformers.

Batches are left-padded so every row's new tokens start at the same column; greedy decoding (the
default) makes a score reproducible. `ChatModel` owns the loaded model (shared with rr_core.serve);
`TransformersCritic` adds the critique protocol. Subclasses add decoding constraints by overriding
`_logits_processors` (e.g. a grammar) or `_extra_generate_kwargs`, without touching the loop.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rr_core.config import from_dict
from rr_core.errors import model_unavailable
from rr_core.critics.base import Critic, DecodeSettings, Generation
from rr_core.critics.fast_decode import FAST_DECODE_MODES, FastDecoder
from rr_core.model_ids import CRITIC_IDS
from rr_core.prompts import Conversation
from rr_core.rubric import Task

logger = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
QUANTIZATIONS = ("none", "8bit", "4bit")
# Modules left in full precision when quantizing: the vision tower (small, sensitive) and the head.
# transformers 5 matches a pattern from the start of the module name or as its suffix (older versions
# as a substring), hence both spellings of the vision tower.
QUANT_SKIP_MODULES = ["model.visual", "visual", "lm_head"]


@dataclass
class TransformersCriticConfig:
    """How to load and run a critic in this process.

    model: a Hugging Face id or a local folder of any Qwen3-VL / Qwen2.5-VL checkpoint; empty means
        the RationalRewards checkpoint of the (single) task in `tasks`.
    tasks: which tasks the checkpoint judges ("t2i", "edit"; a base model may do both).
    dtype: weights dtype; "auto" is bfloat16 on CUDA and float32 on CPU.
    quantization: "none", "8bit" (LLM.int8) or "4bit" (NF4, double quantization) via bitsandbytes;
        the vision tower and lm_head stay unquantized.
    device_map: passed to from_pretrained (accelerate); empty means "auto" on CUDA, "cpu" otherwise.
    batch_size: requests decoded together by `complete`.
    max_new_tokens, temperature, top_p, seed: decoding (temperature 0 is greedy).
    attn_implementation: e.g. "sdpa", "flash_attention_2", "eager"; empty keeps transformers' default.
    max_image_pixels: overrides the processor's pixel budget per image (0 keeps the checkpoint's).
    fast_decode: "off" (plain generate), "static" (a kept, bucketed static KV cache), "compiled"
        (that cache plus a CUDA-graph decode step) or "auto" (compiled where possible, else plain);
        see rr_core.critics.fast_decode. Greedy outputs are identical in every mode.
    dynamic_shapes: compile the fast decode step with symbolic batch size and cache length (two
        compiles serve every bucket) rather than once per bucket (static shapes).
    prefix_reuse: on the fast path, rows of one request (a round's K candidates, an RL group) prefill
        the prompt they share (for an edit, the source image too) once instead of once per row;
        see rr_core.critics.prefix_reuse.
    constrained: decode under the critique grammar (rr_core.grammar) so every critique parses; the
        headings, order and score syntax are enforced, the words are the model's. Off by default
        for real checkpoints (see the README's trade-off); on for the tiny critic.
    grammar_caps: per-section character caps for the grammar (SectionCaps fields); None = defaults.
    adapter: a PEFT (LoRA) adapter folder applied on top of `model` (the base it was trained on), so a
        distilled student loads without a merged copy of the weights; merged into the weights when
        not quantized (plain speed), kept as LoRA layers over a quantized base. The critic's model id
        is then the adapter folder.
    prompt_templates: your own prompt template files (assets/prompts format), each replacing the
        shipped template of the task and mode it names.
    """

    model: str = ""
    tasks: tuple[str, ...] = ("t2i",)
    dtype: str = "auto"
    quantization: str = "none"
    device_map: str = ""
    batch_size: int = 8
    max_new_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    attn_implementation: str = ""
    max_image_pixels: int = 0
    fast_decode: str = "auto"
    prefix_reuse: bool = True
    dynamic_shapes: bool = True
    constrained: bool = False
    grammar_caps: dict[str, int | None] | None = None
    adapter: str = ""
    prompt_templates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.tasks = tuple(Task.parse(t).value for t in self.tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one of 't2i', 'edit'")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.fast_decode not in FAST_DECODE_MODES:
            raise ValueError(f"fast_decode must be one of {FAST_DECODE_MODES}, got {self.fast_decode!r}")
        if not self.model and len(self.tasks) != 1:
            raise ValueError("name the model when one critic serves several tasks")
        self.decode_settings()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformersCriticConfig:
        """Build from a mapping (command line, YAML); unknown keys are rejected, not ignored."""
        return from_dict(cls, data, "TransformersCriticConfig")

    @property
    def model_name(self) -> str:
        return self.model or CRITIC_IDS[Task.parse(self.tasks[0])]

    @property
    def critic_id(self) -> str:
        """What the critic's critiques are recorded under: the adapter when there is one, else the model."""
        return self.adapter or self.model_name

    def caps(self):
        """The grammar's per-section length caps (rr_core.grammar.SectionCaps; defaults when unset)."""
        from rr_core.grammar import SectionCaps

        return SectionCaps(**self.grammar_caps) if self.grammar_caps else SectionCaps()

    def decode_settings(self) -> DecodeSettings:
        return DecodeSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                              top_p=self.top_p, seed=self.seed)


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


class _DeltaStreamer:
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
        streamer = _DeltaStreamer(self.processor.tokenizer, self.eos_ids)
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


class TransformersCritic(Critic):
    """A critic whose model runs in this process (GPU, CPU, or quantized with bitsandbytes).

    Extension points: `_logits_processors` (e.g. grammar-constrained decoding) and
    `_extra_generate_kwargs` (anything else `model.generate` should receive).
    """

    def __init__(
        self,
        config: TransformersCriticConfig | None = None,
        chat_model: ChatModel | None = None,
    ) -> None:
        config = config or TransformersCriticConfig()
        super().__init__(config.critic_id, config.tasks, config.decode_settings(),
                         config.prompt_templates, config.constrained)
        self.config = config
        self.chat_model = chat_model or ChatModel.load(config)
        # The decode path belongs to the shared model: the critic built last sets it for all its users.
        fast = self.chat_model.enable_fast_decode(config.fast_decode)
        fast.reserve_new_tokens = max(fast.reserve_new_tokens, config.max_new_tokens)
        fast.prefix_reuse = config.prefix_reuse
        fast.dynamic_shapes = config.dynamic_shapes

    @property
    def fast_decode_status(self) -> str:
        """What the app shows: "off", "warming up", "ready", "fallback: ..." or "failed: ..."."""
        return self.chat_model.fast.status if self.chat_model.fast is not None else "off"

    def warmup(self, background: bool = False, image_side: int = 1024):
        """Compile and capture the fast decode step for this critic's batch buckets now, not on first use.

        Runs a few-token critique of a blank `image_side` image per bucket up to `config.batch_size`
        (the prompt shape of real critiques). Returns the status, or the thread when `background`.
        """
        from PIL import Image

        from rr_core.critics.base import CritiqueRequest

        fast = self.chat_model.fast
        if fast is None:
            return "off"
        task = max(self.tasks, key=lambda t: t.value)
        blank = Image.new("RGB", (image_side, image_side), (128, 128, 128))
        request = CritiqueRequest(task, "warm-up", blank, source_image=blank if task is Task.EDIT else None)
        settings = DecodeSettings(max_new_tokens=4)

        def run(rows: int) -> None:
            conversations = [self._pointwise_conversation(request)] * rows
            self.chat_model.complete([c.to_transformers() for c in conversations], settings,
                                     self._logits_processors(rows, conversations),
                                     self._extra_generate_kwargs(conversations))

        sizes = [b for b in fast.batch_buckets if b <= self.config.batch_size] or [1]
        if background:
            return fast.warmup_in_background(run, sizes)
        return fast.warmup(run, sizes)

    @property
    def model(self):
        return self.chat_model.model

    @property
    def processor(self):
        return self.chat_model.processor

    def complete(self, conversations: Sequence[Conversation]) -> list[Generation]:
        results: list[Generation] = []
        for start in range(0, len(conversations), self.config.batch_size):
            batch = list(conversations[start:start + self.config.batch_size])
            results += self.chat_model.complete(
                [c.to_transformers() for c in batch], self.settings,
                self._logits_processors(len(batch), batch), self._extra_generate_kwargs(batch),
            )
        return results

    def complete_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        return self.chat_model.stream(
            conversation.to_transformers(), self.settings,
            self._logits_processors(1, [conversation]), self._extra_generate_kwargs([conversation]),
        )

    def _logits_processors(self, batch_size: int, conversations: Sequence[Conversation]) -> list:
        """With `constrained`, one critique grammar per row (a batch may mix tasks and modes)."""
        if not self.config.constrained:
            return []
        from rr_core.critics.constrained import GrammarLogitsProcessor
        from rr_core.grammar import compiled_grammar

        stops = sorted(self.chat_model.eos_ids)
        vocab_size = self.model.config.get_text_config().vocab_size
        grammars = [compiled_grammar(self.processor, c.task, c.mode or "pointwise", self.config.caps(),
                                     vocab_size=vocab_size, stop_token_ids=stops) for c in conversations]
        return [GrammarLogitsProcessor(grammars, batch_size, stop_token_ids=stops)]

    def _extra_generate_kwargs(self, conversations: Sequence[Conversation]) -> dict[str, Any]:
        """Extra `model.generate` arguments for one batch (none here)."""
        return {}


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
