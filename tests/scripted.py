"""Test doubles: a critic that answers with real-format critique texts chosen by the test, and a
generator that paints solid images. For tests only; never a preset a user can pick."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from PIL import Image

from rr_core.critics.base import Critic, Generation
from rr_core.critique import Critique, DimensionScore
from rr_core.critique_format import render_critique
from rr_core.prompts import Conversation
from rr_core.rubric import Task, dimensions

Script = Callable[[Conversation], str]


def request_of(conversation: Conversation) -> str:
    match = re.search(r"User Instruction: (.*)", conversation.user_text)
    return match.group(1).strip() if match else ""


def critique_text(task: Task | str, scores: dict[str, float | str] | float, refined: str = "a refined prompt",
                  justification: str = "Concrete evidence.") -> str:
    """A well-formed critique with the given scores (a number for all, or per key; 'N/A' allowed)."""
    task = Task.parse(task)
    entries = {}
    for dim in dimensions(task):
        value = scores if isinstance(scores, (int, float)) else scores.get(dim.key, 3.0)
        na = value == "N/A"
        entries[dim.key] = DimensionScore(dim.key, None if na else float(value), na, justification)
    return render_critique(Critique(task=task, scores=entries, analysis="The request asks for things.",
                                    summary="A summary.", refinement_comments="Be more specific.",
                                    refined_request=refined))


class ScriptedCritic(Critic):
    """Answers each conversation with `script(conversation)`; records every conversation it saw."""

    def __init__(self, script: Script, tasks: Sequence[Task | str] = (Task.T2I, Task.EDIT),
                 delay_s: float = 0.0, **kwargs) -> None:
        super().__init__("scripted-critic", tasks, **kwargs)
        self.script = script
        self.delay_s = delay_s
        self.seen: list[Conversation] = []
        self._lock = threading.Lock()

    def _answer(self, conversation: Conversation) -> Generation:
        with self._lock:
            self.seen.append(conversation)
        if self.delay_s:
            time.sleep(self.delay_s)
        text = self.script(conversation)
        return Generation(text=text, prompt_tokens=len(conversation.user_text.split()),
                          completion_tokens=len(text.split()), finish_reason="stop", latency_s=self.delay_s)

    def complete(self, conversations: Sequence[Conversation]) -> list[Generation]:
        return [self._answer(c) for c in conversations]

    def complete_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        generation = self._answer(conversation)
        for start in range(0, len(generation.text), 40):
            yield generation.text[start:start + 40]
        yield generation


class PaintGenerator:
    """Solid-colour images whose colour depends on prompt and seed; records its requests."""

    def __init__(self, size: int = 32, fail_times: int = 0) -> None:
        self.size = size
        self.requests = []
        self.fail_times = fail_times
        self.fail_from_call: int | None = None  # every call from this one on (1-based) fails

    def generate(self, request) -> list[Image.Image]:
        self.requests.append(request)
        failing_from = self.fail_from_call is not None and len(self.requests) >= self.fail_from_call
        if self.fail_times > 0 or failing_from:
            self.fail_times = max(0, self.fail_times - 1)
            raise RuntimeError("CUDA out of memory (simulated)")
        images = []
        for seed in request.candidate_seeds():
            digest = hashlib.sha256(f"{request.prompt}|{seed}".encode()).digest()
            images.append(Image.new("RGB", (self.size, self.size), tuple(digest[:3])))
        return images
