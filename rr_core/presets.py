"""Model presets: which critic and generators a session uses, and the `Studio` that loads them lazily.

Presets:
- rationalrewards: the two 8B critics in process (bf16) + FLUX.1-schnell + FLUX.1-Kontext-dev. A
  CUDA GPU with about 60 GB is comfortable; `low_memory=True` (flag --low-memory) fits a single 24 GB
  GPU: critics in 4-bit NF4 (~6 GB each while loaded), generator transformers in 4-bit NF4 with model
  CPU offload (FLUX peaks near 12 GB that way; bf16 with offload alone peaks near 23 GB).
- remote: the critic at an OpenAI-compatible URL (vLLM, or `python -m rr_core.serve`); generators local.
- tiny: random-weight models built offline. Output is meaningless; it exists for wiring, tests and
  demos without downloads. Its critic decodes under the critique grammar so its critiques parse.
- auto: a CUDA GPU -> rationalrewards; else a critic URL configured -> remote; else tiny, with a
  banner saying how to get real critiques.

Model ids can be overridden by environment variables (Spaces secrets): RR_T2I_MODEL,
RR_EDIT_MODEL, RR_CRITIC_T2I_MODEL, RR_CRITIC_EDIT_MODEL; the critic server by RR_CRITIC_URL,
RR_CRITIC_MODEL, RR_CRITIC_API_KEY, and RR_CRITIC_CONSTRAINED=1 sends the critique grammar with
every request (vLLM structured outputs).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rr_core.critics import factory
from rr_core.critics.router import TaskRouter
from rr_core.critics.tiny import tiny_critic_settings
from rr_core.generators.base import GeneratorConfig
from rr_core.loop import RefineLoop
from rr_core.model_ids import CRITIC_IDS, EDIT_ID, TEXT_TO_IMAGE_ID
from rr_core.rubric import Task

logger = logging.getLogger(__name__)

PRESETS = ("auto", "rationalrewards", "remote", "tiny")
TINY_BANNER = (
    "Offline demo mode: the critic and the generators are tiny random-weight models, so images are "
    "noise and critiques are meaningless (though well-formed). For real critiques run on a CUDA GPU "
    "(preset rationalrewards) or point RR_CRITIC_URL at an OpenAI-compatible server running "
    "TIGER-Lab/RationalRewards-8B-T2I (preset remote)."
)


@dataclass
class Preset:
    """A resolved preset: plain settings, nothing loaded yet."""

    name: str
    critic_kind: str  # a kind of rr_core.critics.factory: "transformers" | "openai"
    critic_settings: dict[Task, dict[str, Any]]
    generators: dict[Task, GeneratorConfig]
    banner: str = ""
    requested: str = ""
    description: str = ""

    def describe(self) -> dict[str, Any]:
        """What the UI shows under "models": critic and generator per task."""
        return {
            "preset": self.name,
            "requested": self.requested,
            "critic": {t.value: s.get("model") or s.get("base_url", "") for t, s in self.critic_settings.items()},
            "generators": {t.value: g.model_id for t, g in self.generators.items()},
            "banner": self.banner,
        }


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def resolve_preset(name: str = "auto", *, critic_url: str | None = None, low_memory: bool = False,
                   env: Mapping[str, str] | None = None, cache_dir: str | None = None,
                   critic_max_new_tokens: int | None = None, prompt_templates: tuple[str, ...] = ()) -> Preset:
    """Turn a preset name (and the environment) into concrete settings.

    `critic_max_new_tokens` caps every critique's length (a critique cut off there is marked
    truncated); `prompt_templates` are the user's template files replacing the shipped ones.
    """
    preset = _resolve(name, critic_url, low_memory, os.environ if env is None else env, cache_dir)
    if critic_max_new_tokens is not None and critic_max_new_tokens < 1:
        raise ValueError(f"critic max new tokens must be >= 1, got {critic_max_new_tokens}")
    for settings in preset.critic_settings.values():
        if critic_max_new_tokens is not None:
            settings["max_new_tokens"] = critic_max_new_tokens
        if prompt_templates:
            settings["prompt_templates"] = tuple(str(p) for p in prompt_templates)
    return preset


def _resolve(name: str, critic_url: str | None, low_memory: bool, env: Mapping[str, str],
             cache_dir: str | None) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    critic_url = critic_url or env.get("RR_CRITIC_URL") or None
    requested = name
    if name == "auto":
        name = "rationalrewards" if cuda_available() else ("remote" if critic_url else "tiny")
    if name == "tiny":
        return _tiny(cache_dir, requested)

    generators = {
        Task.T2I: GeneratorConfig(task=Task.T2I, model_id=env.get("RR_T2I_MODEL") or TEXT_TO_IMAGE_ID,
                                  cpu_offload=low_memory, quantize_4bit=low_memory),
        Task.EDIT: GeneratorConfig(task=Task.EDIT, model_id=env.get("RR_EDIT_MODEL") or EDIT_ID,
                                   cpu_offload=low_memory, quantize_4bit=low_memory),
    }
    if name == "remote":
        if not critic_url:
            raise ValueError("preset remote needs a critic URL: set RR_CRITIC_URL or pass --critic-url")
        settings = {"base_url": critic_url, "model": env.get("RR_CRITIC_MODEL", ""),
                    "api_key": env.get("RR_CRITIC_API_KEY") or "EMPTY", "tasks": ("t2i", "edit"),
                    "constrained": env.get("RR_CRITIC_CONSTRAINED", "") in ("1", "true", "yes")}
        return Preset("remote", "openai", {Task.T2I: settings, Task.EDIT: settings}, generators,
                      requested=requested, description="critic at an OpenAI-compatible server; generators local")
    critic_models = {Task.T2I: env.get("RR_CRITIC_T2I_MODEL") or CRITIC_IDS[Task.T2I],
                     Task.EDIT: env.get("RR_CRITIC_EDIT_MODEL") or CRITIC_IDS[Task.EDIT]}
    settings = {task: {"model": model, "tasks": (task.value,), "quantization": "4bit" if low_memory else "none"}
                for task, model in critic_models.items()}
    return Preset("rationalrewards", "transformers", settings, generators, requested=requested,
                  description="RationalRewards-8B critics in process" + (" (4-bit, offload)" if low_memory else ""))


def _tiny(cache_dir: str | None, requested: str) -> Preset:
    from rr_core.generators.tiny import tiny_generator_config

    critic = tiny_critic_settings(cache_dir)
    generators = {task: tiny_generator_config(task, cache_dir) for task in Task}
    return Preset("tiny", "transformers", {Task.T2I: critic, Task.EDIT: critic}, generators,
                  banner=TINY_BANNER, requested=requested, description="tiny random-weight models (offline)")


@dataclass
class Studio:
    """The loaded models of a preset. Models load on first use, each once, thread-safely."""

    preset: Preset
    _critics: dict[str, Any] = field(default_factory=dict)
    _generators: dict[Task, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def critic(self) -> TaskRouter:
        """One critic per task; tasks that share settings share one loaded model."""
        with self._lock:
            per_task = {}
            for task, settings in self.preset.critic_settings.items():
                key = repr(sorted(settings.items()))
                if key not in self._critics:
                    self._critics[key] = self._load_critic(settings)
                per_task[task] = self._critics[key]
            return TaskRouter(per_task)

    def _load_critic(self, settings: dict[str, Any]):
        return factory.build_critic(self.preset.critic_kind, settings)

    def generator(self, task: Task | str):
        task = Task.parse(task)
        with self._lock:
            if task not in self._generators:
                from rr_core.generators.factory import load_generator

                self._generators[task] = load_generator(self.preset.generators[task])
            return self._generators[task]

    def loop(self, task: Task | str) -> RefineLoop:
        task = Task.parse(task)
        return RefineLoop(self.generator(task), self.critic(), task)

    def loaded(self) -> dict[str, bool]:
        return {"critic": bool(self._critics), **{f"generator_{t.value}": t in self._generators for t in Task}}
