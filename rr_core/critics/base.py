"""What every critic backend shares: requests, decode settings, and turning model text into critiques.

A backend only implements `complete` (a batch of conversations to texts) and `complete_stream`
(one conversation, text deltas then the finished generation). Prompt building, parsing, the
truncation rule and the metadata live here once, so the transformers backend, the OpenAI-compatible
server backend and test doubles return critiques built the same way.

A critic returns critiques without a reward (reward None): which dimensions make the reward is the
caller's setting (the loop's `LoopConfig.reward`, RL's `reward` section, the app's session), so the
caller applies its `RewardSpec` once with `rr_core.reward.apply_reward` and no default spec ever
leaks into a recorded critique.

The request text is validated once, when a `CritiqueRequest` or `PairRequest` is built: every
critique goes through one, so the backends and the prompt builder trust what they are given.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from rr_core.critique import Critique, PairwiseCritique, ParseStatus
from rr_core.errors import InvalidRequest
from rr_core.parser import parse_critique, parse_pairwise
from rr_core.prompts import (
    Conversation,
    PromptTemplate,
    build_pairwise,
    build_pointwise,
    load_template_file,
    validate_request,
)
from rr_core.rubric import Task

FinishReason = Literal["stop", "length"]


class UnsupportedTask(InvalidRequest):
    """A request of a task the critic was not trained for (the T2I and Edit checkpoints are separate)."""


def _check_common(task: Task, request: str, source_image: Image.Image | None) -> str:
    """The request text, validated and stripped (the one check of a direct caller's request)."""
    request = validate_request(request)
    if task is Task.EDIT and source_image is None:
        raise InvalidRequest("An edit critique needs the source image as well as the edited image.")
    if task is Task.T2I and source_image is not None:
        raise InvalidRequest("A text-to-image critique takes no source image; use task 'edit' for edits.")
    return request


@dataclass(frozen=True)
class CritiqueRequest:
    """One image to judge: the user's request, the image, and for edits the source image."""

    task: Task
    request: str
    image: Image.Image
    source_image: Image.Image | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task.parse(self.task))
        object.__setattr__(self, "request", _check_common(self.task, self.request, self.source_image))
        if not isinstance(self.image, Image.Image):
            raise InvalidRequest(f"The image must be a PIL image, got {type(self.image).__name__}.")


@dataclass(frozen=True)
class PairRequest:
    """Two candidates for one request (Image A, Image B), for pairwise evaluation and PARROT."""

    task: Task
    request: str
    image_a: Image.Image
    image_b: Image.Image
    source_image: Image.Image | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task.parse(self.task))
        object.__setattr__(self, "request", _check_common(self.task, self.request, self.source_image))
        for name in ("image_a", "image_b"):
            if not isinstance(getattr(self, name), Image.Image):
                raise InvalidRequest(f"{name} must be a PIL image, got {type(getattr(self, name)).__name__}.")


@dataclass
class Generation:
    """The model's answer to one conversation.

    `error` is set (and `text` keeps whatever raw answer came back) when the backend got an answer
    it could not use, e.g. a server reply without choices: the critique is then failed, never scored.
    """

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: FinishReason = "stop"
    latency_s: float | None = None
    error: str = ""


@dataclass(frozen=True)
class DecodeSettings:
    """How the critic decodes.

    Greedy (temperature 0.0) by default so a score is reproducible; upstream samples at 0.1.
    `max_new_tokens` 2048 is upstream's limit: a critique cut off there is marked truncated.
    """

    max_new_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Critic(abc.ABC):
    """A reward model that writes critiques. Subclasses implement `complete` and `complete_stream`."""

    interruptible: bool = False
    """True when the backend's `complete` and `complete_stream` take a `cancel` event and abandon the
    request in flight when it is set (the server backend). The others finish the batch they started;
    the loop checks its cancel event between steps."""

    def __init__(
        self,
        model_id: str,
        tasks: frozenset[Task] | Sequence[Task | str],
        settings: DecodeSettings | None = None,
        templates: Sequence[str | Path | PromptTemplate] = (),
        constrained: bool = False,
    ) -> None:
        """`templates`: the user's own prompt template files, each replacing the shipped template of
        its task and mode (a template file names both). `constrained`: the backend decodes under the
        critique grammar; recorded on every critique it returns."""
        self.model_id = model_id
        self.constrained = constrained
        self.tasks = frozenset(Task.parse(t) for t in tasks)
        if not self.tasks:
            raise ValueError("a critic must serve at least one task")
        self.settings = settings or DecodeSettings()
        self.templates: dict[tuple[Task, str], PromptTemplate] = {}
        for item in templates:
            template = item if isinstance(item, PromptTemplate) else load_template_file(item)
            self.templates[(template.task, template.mode)] = template

    # --- what a backend implements -------------------------------------------------------------

    @abc.abstractmethod
    def complete(self, conversations: Sequence[Conversation]) -> list[Generation]:
        """One generation per conversation, in order (batched or concurrent as the backend can)."""

    @abc.abstractmethod
    def complete_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        """Text deltas as they are decoded, then the final Generation (whose text is their concatenation)."""

    # --- shared behaviour ----------------------------------------------------------------------

    def critique_many(self, requests: Sequence[CritiqueRequest],
                      cancel: threading.Event | None = None) -> list[Critique]:
        """Critique a batch of images; one Critique per request, in order. `cancel`, when set, abandons
        a remote request in flight (CritiqueCancelled)."""
        for request in requests:
            self._check_task(request.task)
        conversations = [self._pointwise_conversation(r) for r in requests]
        generations = self._complete_all(conversations, cancel) if conversations else []
        return [self._to_critique(r.task, c, g) for r, c, g in zip(requests, conversations, generations)]

    def critique(self, request: CritiqueRequest, cancel: threading.Event | None = None) -> Critique:
        return self.critique_many([request], cancel)[0]

    def stream(self, request: CritiqueRequest, cancel: threading.Event | None = None) -> Iterator[str | Critique]:
        """Text deltas of one critique as the model writes them, then the parsed Critique."""
        self._check_task(request.task)
        conversation = self._pointwise_conversation(request)
        chunks = (self.complete_stream(conversation, cancel=cancel) if self.interruptible
                  else self.complete_stream(conversation))
        for item in chunks:
            if isinstance(item, Generation):
                yield self._to_critique(request.task, conversation, item)
            else:
                yield item

    def compare_many(self, requests: Sequence[PairRequest],
                     cancel: threading.Event | None = None) -> list[PairwiseCritique]:
        """Pairwise critiques (Image A vs Image B), one per pair, in order."""
        for request in requests:
            self._check_task(request.task)
        conversations = [
            build_pairwise(r.task, r.request, r.image_a, r.image_b, source_image=r.source_image,
                           template=self.templates.get((r.task, "pairwise")))
            for r in requests
        ]
        generations = self._complete_all(conversations, cancel) if conversations else []
        return [self._to_pairwise(r.task, c, g) for r, c, g in zip(requests, conversations, generations)]

    def compare(self, request: PairRequest, cancel: threading.Event | None = None) -> PairwiseCritique:
        return self.compare_many([request], cancel)[0]

    # --- helpers -------------------------------------------------------------------------------

    def _complete_all(self, conversations: Sequence[Conversation],
                      cancel: threading.Event | None) -> list[Generation]:
        if self.interruptible:
            return self.complete(conversations, cancel=cancel)
        return self.complete(conversations)

    def _check_task(self, task: Task) -> None:
        if task not in self.tasks:
            served = ", ".join(sorted(t.value for t in self.tasks))
            raise UnsupportedTask(
                f"The critic {self.model_id!r} serves {served} only, not {task.value!r}: "
                "load the checkpoint for that task (or use a TaskRouter)."
            )

    def _pointwise_conversation(self, request: CritiqueRequest) -> Conversation:
        return build_pointwise(request.task, request.request, request.image, source_image=request.source_image,
                               template=self.templates.get((request.task, "pointwise")))

    def _meta(self, conversation: Conversation, generation: Generation) -> dict:
        return {
            "constrained": self.constrained,
            "model_id": self.model_id,
            "template_version": conversation.template_version,
            "latency_s": generation.latency_s,
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
        }

    def _to_critique(self, task: Task, conversation: Conversation, generation: Generation) -> Critique:
        """Parse and apply the truncation rule; a backend error gives a failed critique. No reward:
        the caller applies its own RewardSpec once."""
        if generation.error:
            return Critique.failure(task, generation.error, raw_text=generation.text,
                                    **self._meta(conversation, generation))
        critique = parse_critique(generation.text, task)
        _mark_truncation(critique, generation, self.settings.max_new_tokens)
        for name, value in self._meta(conversation, generation).items():
            setattr(critique, name, value)
        return critique

    def _to_pairwise(self, task: Task, conversation: Conversation, generation: Generation) -> PairwiseCritique:
        meta = self._meta(conversation, generation)
        if generation.error:
            return PairwiseCritique(task=task, status=ParseStatus.FAILED, raw_text=generation.text,
                                    error=generation.error, problems=[generation.error], **meta)
        pair = parse_pairwise(generation.text, task)
        _mark_truncation(pair, generation, self.settings.max_new_tokens)
        for name, value in meta.items():
            setattr(pair, name, value)
        return pair


def _mark_truncation(result: Critique | PairwiseCritique, generation: Generation, max_new_tokens: int) -> None:
    """A critique cut off at the token limit is truncated and never reported as ok."""
    if generation.finish_reason != "length":
        return
    result.truncated = True
    note = f"cut off at max_new_tokens={max_new_tokens}"
    if note not in result.problems:
        result.problems.append(note)
    if result.status is ParseStatus.OK:
        result.status = ParseStatus.PARTIAL

