"""Which critic a phase uses (teacher, judge, student under evaluation), named in a config file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rr_core.critics.base import Critic

BACKENDS = ("transformers", "openai")


@dataclass
class CriticSpec:
    """A critic backend and its settings.

    backend: "transformers" (in-process; settings are TransformersCriticConfig fields: model, tasks,
        dtype, quantization, batch_size, max_new_tokens, ...) or "openai" (an OpenAI-compatible server
        such as vLLM; settings are OpenAICriticConfig fields: base_url, model, concurrency, ...).
    settings: the backend's config fields; unknown keys are rejected by the backend's config.
    """

    backend: str = "transformers"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"critic backend must be one of {BACKENDS}, got {self.backend!r}")


def build_critic(spec: CriticSpec) -> Critic:
    """Load the critic a spec names (a model load for the transformers backend)."""
    if spec.backend == "openai":
        from rr_core.critics.openai_critic import OpenAICritic, OpenAICriticConfig

        return OpenAICritic(OpenAICriticConfig.from_dict(dict(spec.settings)))
    from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig

    settings = dict(spec.settings)
    if "tasks" in settings:
        settings["tasks"] = tuple(settings["tasks"])
    return TransformersCritic(TransformersCriticConfig.from_dict(settings))
