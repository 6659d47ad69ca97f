"""The in-process critic: a Qwen3-VL (or Qwen2.5-VL) checkpoint run with transformers.

`TransformersCritic` adds the critique protocol to a `ChatModel` (rr_core.critics.chat_model, the
loaded model shared with rr_core.serve). Subclasses add decoding constraints by overriding
`_logits_processors` (e.g. a grammar) or `_extra_generate_kwargs`, without touching the loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rr_core.config import from_dict
from rr_core.critics.base import Critic, DecodeSettings, Generation
from rr_core.critics.chat_model import DTYPES, QUANTIZATIONS, ChatModel
from rr_core.critics.fast_decode import FAST_DECODE_MODES
from rr_core.model_ids import CRITIC_IDS
from rr_core.prompts import Conversation
from rr_core.rubric import Task


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
        is then the adapter's name and content hash (rr_core.model_identity.artefact_id).
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
        """What the critic's critiques are recorded under: the adapter (folder name and content hash)
        when there is one, so a student's critiques never pass for its base model's; else the model."""
        if self.adapter:
            from rr_core.model_identity import artefact_id

            return artefact_id(self.adapter)
        return self.model_name

    def caps(self):
        """The grammar's per-section length caps (rr_core.grammar.SectionCaps; defaults when unset)."""
        from rr_core.grammar import SectionCaps

        return SectionCaps(**self.grammar_caps) if self.grammar_caps else SectionCaps()

    def decode_settings(self) -> DecodeSettings:
        return DecodeSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                              top_p=self.top_p, seed=self.seed)



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
