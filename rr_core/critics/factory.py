"""Build a critic from a kind and its settings: the one critic factory (the generators have `load_generator`).

The app's presets, PARROT's teacher, judge and student, and the RL trainer all name a critic the
same way, as a kind plus that backend's own config keys, so they load it here:

- transformers: in process; settings are `TransformersCriticConfig` fields (model, tasks, dtype,
  quantization, batch_size, max_new_tokens, adapter, ...).
- openai: an OpenAI-compatible server (vLLM, `python -m rr_core.serve`); settings are
  `OpenAICriticConfig` fields (base_url, model, concurrency, timeout_s, max_retries, ...); a
  timeout_s or max_retries the settings leave out comes from RR_CRITIC_TIMEOUT / RR_CRITIC_RETRIES
  when set, so every server critic (app, PARROT, RL) is bounded the same way.
- tiny: the offline random-weight critic (built once in the cache folder); settings override its
  defaults (`rr_core.critics.tiny.tiny_critic_settings`), e.g. tasks or max_new_tokens.
- adapter: a transformers critic whose LoRA adapter sits on its base model (a distilled student);
  settings must name `adapter` (the folder) and `model` (the base it was trained on).

Unknown kinds and unknown settings are errors naming the known ones. Backends are imported only
when used, so asking for a server critic never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rr_core.critics.base import Critic

if TYPE_CHECKING:
    from rr_core.critics.openai_critic import OpenAICriticConfig
    from rr_core.critics.transformers_critic import TransformersCriticConfig

CRITIC_KINDS = ("transformers", "openai", "tiny", "adapter")
_SEQUENCE_KEYS = ("tasks", "prompt_templates")  # YAML gives lists; the configs hold tuples


class UnknownCriticKind(ValueError):
    """A critic kind the factory does not build."""


def critic_config(kind: str, settings: Mapping[str, Any] | None = None,
                  cache_dir: str | Path | None = None) -> TransformersCriticConfig | OpenAICriticConfig:
    """The backend config that `kind` and `settings` describe, checked, with no model loaded.

    `cache_dir` is where the tiny critic's checkpoint is built once if missing (kind tiny only;
    default rr_core.paths.cache_dir()).
    """
    if kind not in CRITIC_KINDS:
        raise UnknownCriticKind(f"Unknown critic kind {kind!r}; choose one of {', '.join(CRITIC_KINDS)}.")
    if settings is not None and not isinstance(settings, Mapping):
        raise ValueError(f"critic settings must be a mapping of config keys, got {type(settings).__name__}.")
    values = {key: tuple(value) if key in _SEQUENCE_KEYS and isinstance(value, list) else value
              for key, value in (settings or {}).items()}
    if kind == "openai":
        from rr_core.critics.openai_critic import OpenAICriticConfig, transport_from_env

        return OpenAICriticConfig.from_dict({**transport_from_env(), **values})
    from rr_core.critics.transformers_critic import TransformersCriticConfig

    if kind == "tiny":
        from rr_core.critics.tiny import tiny_critic_settings

        values = {**tiny_critic_settings(cache_dir), **values}
    if kind == "adapter" and not (values.get("adapter") and values.get("model")):
        raise ValueError("an adapter critic needs `adapter` (the LoRA folder) and `model` (its base checkpoint).")
    return TransformersCriticConfig.from_dict(values)


def with_transport(kind: str, settings: Mapping[str, Any] | None, timeout_s: float | None,
                   max_retries: int | None) -> dict[str, Any]:
    """`settings` with a server critic's deadline and retry budget set from a config's own fields
    (the training configs name them next to the kind). Either set for an in-process kind is an
    error: there is no request to time out."""
    values = dict(settings or {})
    given = {key: value for key, value in (("timeout_s", timeout_s), ("max_retries", max_retries))
             if value is not None}
    if given and kind != "openai":
        names = " and ".join(given)
        raise ValueError(f"{names} {'apply' if len(given) > 1 else 'applies'} to a server critic "
                         f"(kind openai) only, not {kind!r}.")
    if "timeout_s" in given and not given["timeout_s"] > 0:
        raise ValueError(f"the critic timeout must be a positive number of seconds, got {given['timeout_s']}")
    if "max_retries" in given and given["max_retries"] < 0:
        raise ValueError(f"the critic's retries must be >= 0, got {given['max_retries']}")
    values.update(given)
    return values


def build_critic(kind: str, settings: Mapping[str, Any] | None = None,
                 cache_dir: str | Path | None = None) -> Critic:
    """Load the critic `kind` and `settings` name (a model load for every kind but openai)."""
    config = critic_config(kind, settings, cache_dir)
    if kind == "openai":
        from rr_core.critics.openai_critic import OpenAICritic

        return OpenAICritic(config)
    from rr_core.critics.transformers_critic import TransformersCritic

    return TransformersCritic(config)
