"""Which critic a phase uses (teacher, judge, student under evaluation), named in a config file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rr_core.critics import factory
from rr_core.critics.base import Critic

BACKENDS = factory.CRITIC_KINDS


@dataclass
class CriticSpec:
    """A critic kind and its settings, as rr_core.critics.factory builds them.

    backend: "transformers" (in-process; settings are TransformersCriticConfig fields: model, tasks,
        dtype, quantization, batch_size, max_new_tokens, ...), "openai" (an OpenAI-compatible server
        such as vLLM; settings are OpenAICriticConfig fields: base_url, model, concurrency, ...),
        "tiny" (the offline random-weight critic) or "adapter" (a LoRA student on its base model).
    settings: the backend's config fields; unknown keys are rejected by the backend's config.
    timeout_s, max_retries: for backend openai, the total deadline of one critique and the retries
        within it (OpenAICriticConfig's fields; unset: RR_CRITIC_TIMEOUT / RR_CRITIC_RETRIES, then
        the defaults). An in-process backend has nothing to time out, so they are refused there.
    """

    backend: str = "transformers"
    settings: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"critic backend must be one of {BACKENDS}, got {self.backend!r}")
        self.settings = factory.with_transport(self.backend, self.settings, self.timeout_s, self.max_retries)


def build_critic(spec: CriticSpec) -> Critic:
    """Load the critic a spec names, through the one critic factory."""
    return factory.build_critic(spec.backend, spec.settings)
