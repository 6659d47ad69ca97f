"""Model presets: which critic and generators a session uses, and the `Studio` that loads them lazily.

Presets:
- rationalrewards: the two 8B critics in process (bf16) + FLUX.1-schnell + FLUX.1-Kontext-dev. A
  CUDA GPU with about 60 GB is comfortable; `low_memory=True` (flag --low-memory) fits a single 24 GB
  GPU: critics in 4-bit NF4 (~6 GB each while loaded), generator transformers in 4-bit NF4 with model
  CPU offload (FLUX peaks near 12 GB that way; bf16 with offload alone peaks near 23 GB).
- remote: the critics at OpenAI-compatible URLs (vLLM, or `python -m rr_core.serve`); generators local.
  One server may serve both tasks (RR_CRITIC_URL), or each task its own checkpoint
  (RR_CRITIC_T2I_URL / RR_CRITIC_EDIT_URL, each falling back to RR_CRITIC_URL).
- tiny: random-weight models built offline. Output is meaningless; it exists for wiring, tests and
  demos without downloads. Its critic decodes under the critique grammar so its critiques parse.
- auto: a CUDA GPU -> rationalrewards; else a critic URL configured -> remote; else tiny, with a
  banner saying how to get real critiques.

Model ids can be overridden by environment variables (Spaces secrets): RR_T2I_MODEL,
RR_EDIT_MODEL, RR_CRITIC_T2I_MODEL, RR_CRITIC_EDIT_MODEL (in preset remote: the served model name on
that task's server); the critic server by RR_CRITIC_URL, RR_CRITIC_T2I_URL, RR_CRITIC_EDIT_URL,
RR_CRITIC_MODEL, RR_CRITIC_API_KEY; RR_CRITIC_TIMEOUT (total seconds per critique) and
RR_CRITIC_RETRIES bound every remote critique; RR_CRITIC_CONSTRAINED=1 sends the critique grammar
with every request (vLLM structured outputs).

Trained artefacts load back without code (rr_core.presets.Artefacts; flags on app.py, rr_core.refine
and studio.refine, each with its env twin): RR_CRITIC_ADAPTER (--critic-adapter) puts a PARROT
student's LoRA adapter on the in-process critic, the adapter's own base model underneath;
RR_CRITIC_CONSTRAINED (--critic-constrained) also turns the grammar on for an in-process critic (a
merged student trained on few samples); RR_T2I_LORA / RR_EDIT_LORA (--t2i-lora / --edit-lora) load
an RL LoRA into a generator. Every such artefact is recorded as its name plus a content hash
(rr_core.model_identity), so the database tells a student or a LoRA from its base.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rr_core.critics import factory
from rr_core.critics.router import TaskRouter
from rr_core.critics.openai_critic import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, transport_from_env
from rr_core.critics.tiny import tiny_critic_settings
from rr_core.generators.base import GeneratorConfig
from rr_core.loop import RefineLoop
from rr_core.model_identity import artefact_id, with_lora
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
            "critic": {t.value: critic_label(s) for t, s in self.critic_settings.items()},
            "generators": {t.value: generator_id(g) for t, g in self.generators.items()},
            "banner": self.banner,
        }


def critic_label(settings: Mapping[str, Any]) -> str:
    """How a critic is shown and recorded: its adapter's artefact id, else its model or server URL."""
    if settings.get("adapter"):
        return artefact_id(settings["adapter"])
    return settings.get("model") or settings.get("base_url", "")


def generator_id(config: GeneratorConfig) -> str:
    """The id recorded with every image a generator makes: its model, plus its LoRA's artefact id."""
    return with_lora(config.model_id or "", config.lora_path)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Artefacts:
    """Trained results to load over a preset's models: a critic adapter (a PARROT student), the
    grammar for an in-process critic, and a LoRA per generator (RL). Unset fields fall back to
    RR_CRITIC_ADAPTER, RR_CRITIC_CONSTRAINED, RR_T2I_LORA and RR_EDIT_LORA."""

    critic_adapter: str | None = None
    critic_constrained: bool | None = None
    t2i_lora: str | None = None
    edit_lora: str | None = None

    def resolved(self, env: Mapping[str, str]) -> Artefacts:
        """These values with the environment's filled in where unset, every path checked to exist."""
        constrained = self.critic_constrained
        if constrained is None and env.get("RR_CRITIC_CONSTRAINED"):
            constrained = _flag(env.get("RR_CRITIC_CONSTRAINED"))
        values = Artefacts(self.critic_adapter or env.get("RR_CRITIC_ADAPTER") or None, constrained,
                           self.t2i_lora or env.get("RR_T2I_LORA") or None,
                           self.edit_lora or env.get("RR_EDIT_LORA") or None)
        for label, path in (("critic adapter", values.critic_adapter), ("text-to-image LoRA", values.t2i_lora),
                            ("edit LoRA", values.edit_lora)):
            if path and not os.path.exists(path):
                raise ValueError(f"The {label} {path} does not exist.")
        if values.critic_adapter and not os.path.isfile(os.path.join(values.critic_adapter, "adapter_config.json")):
            raise ValueError(f"The critic adapter {values.critic_adapter} has no adapter_config.json: pass the "
                             "folder a PARROT LoRA run saved (its `adapter` folder), or load a merged student "
                             "with RR_CRITIC_T2I_MODEL / RR_CRITIC_EDIT_MODEL.")
        return values


def add_artefact_arguments(parser: Any) -> None:
    """The flags that load trained artefacts (app.py, rr_core.refine, studio.refine share them)."""
    parser.add_argument("--critic-adapter", metavar="DIR", default=None,
                        help="a PARROT student's LoRA adapter folder for the in-process critic (RR_CRITIC_ADAPTER)")
    parser.add_argument("--critic-constrained", action="store_true", default=None,
                        help="decode critiques under the critique grammar (RR_CRITIC_CONSTRAINED=1)")
    parser.add_argument("--t2i-lora", metavar="DIR", default=None,
                        help="an RL LoRA for the text-to-image generator (RR_T2I_LORA)")
    parser.add_argument("--edit-lora", metavar="DIR", default=None,
                        help="an RL LoRA for the edit generator (RR_EDIT_LORA)")


def artefacts_from_args(args: Any) -> Artefacts:
    """The Artefacts the flags of `add_artefact_arguments` name (unset ones fall back to the env)."""
    return Artefacts(args.critic_adapter, args.critic_constrained, args.t2i_lora, args.edit_lora)


def adapter_base(adapter: str) -> str:
    """The base checkpoint an adapter was trained on (peft's adapter_config.json), "" when unnamed."""
    import json

    config = json.loads(Path(adapter, "adapter_config.json").read_text(encoding="utf-8"))
    return str(config.get("base_model_name_or_path") or "")


def apply_artefacts(preset: Preset, artefacts: Artefacts) -> Preset:
    """Put the critic adapter, the grammar flag and the generator LoRAs on a resolved preset.

    The adapter goes on an in-process critic only (a server critic is the server's business: run
    `python -m rr_core.serve --adapter DIR` and point --critic-url at it); it serves every task the
    preset's critics serve, over the base model named in the adapter's config when it names one.
    """
    if artefacts.critic_adapter:
        if preset.critic_kind != "transformers":
            raise ValueError("--critic-adapter loads the adapter in this process; with a critic server, serve "
                             "it there instead: python -m rr_core.serve --model BASE --adapter DIR")
        first = next(iter(preset.critic_settings.values()))
        base = adapter_base(artefacts.critic_adapter) or first.get("model", "")
        if not base:
            raise ValueError(f"The adapter {artefacts.critic_adapter} does not name its base model; set "
                             "RR_CRITIC_T2I_MODEL to it.")
        tasks = tuple(task.value for task in preset.critic_settings)
        shared = {**first, "model": base, "tasks": tasks, "adapter": artefacts.critic_adapter}
        preset.critic_settings = {task: shared for task in preset.critic_settings}
    if artefacts.critic_constrained is not None:
        for settings in preset.critic_settings.values():
            settings["constrained"] = artefacts.critic_constrained
    for task, lora in ((Task.T2I, artefacts.t2i_lora), (Task.EDIT, artefacts.edit_lora)):
        if lora:
            preset.generators[task] = replace(preset.generators[task], lora_path=lora)
    return preset


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def resolve_preset(name: str = "auto", *, critic_url: str | None = None, low_memory: bool = False,
                   env: Mapping[str, str] | None = None, cache_dir: str | None = None,
                   critic_max_new_tokens: int | None = None, prompt_templates: tuple[str, ...] = (),
                   critic_t2i_url: str | None = None, critic_edit_url: str | None = None,
                   critic_timeout: float | None = None, critic_retries: int | None = None,
                   artefacts: Artefacts | None = None) -> Preset:
    """Turn a preset name (and the environment) into concrete settings.

    `critic_max_new_tokens` caps every critique's length (a critique cut off there is marked
    truncated); `prompt_templates` are the user's template files replacing the shipped ones.
    `critic_t2i_url` / `critic_edit_url` give a task its own critic server (else `critic_url` serves
    both). `critic_timeout` (total seconds per critique) and `critic_retries` bound every remote
    critique; unset, RR_CRITIC_TIMEOUT and RR_CRITIC_RETRIES apply, then the defaults. They only
    concern server critics: an in-process critic has no network to wait on. `artefacts` (and their
    env twins) load a critic adapter and generator LoRAs over the preset's models.
    """
    env = os.environ if env is None else env
    urls = {Task.T2I: critic_t2i_url or None, Task.EDIT: critic_edit_url or None}
    preset = _resolve(name, critic_url, urls, low_memory, env, cache_dir)
    preset = apply_artefacts(preset, (artefacts or Artefacts()).resolved(env))
    if critic_max_new_tokens is not None and critic_max_new_tokens < 1:
        raise ValueError(f"critic max new tokens must be >= 1, got {critic_max_new_tokens}")
    transport = {"timeout_s": DEFAULT_TIMEOUT_S, "max_retries": DEFAULT_RETRIES, **transport_from_env(env)}
    if critic_timeout is not None:
        if not critic_timeout > 0:
            raise ValueError(f"the critic timeout must be a positive number of seconds, got {critic_timeout}")
        transport["timeout_s"] = float(critic_timeout)
    if critic_retries is not None:
        if critic_retries < 0:
            raise ValueError(f"the critic's retries must be >= 0, got {critic_retries}")
        transport["max_retries"] = int(critic_retries)
    for settings in preset.critic_settings.values():
        if critic_max_new_tokens is not None:
            settings["max_new_tokens"] = critic_max_new_tokens
        if prompt_templates:
            settings["prompt_templates"] = tuple(str(p) for p in prompt_templates)
        if preset.critic_kind == "openai":
            settings.update(transport)
    return preset


def _resolve(name: str, critic_url: str | None, task_urls: dict[Task, str | None], low_memory: bool,
             env: Mapping[str, str], cache_dir: str | None) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    critic_url = critic_url or env.get("RR_CRITIC_URL") or None
    task_urls = {task: task_urls.get(task) or env.get(f"RR_CRITIC_{task.name}_URL") or critic_url for task in Task}
    requested = name
    if name == "auto":
        name = "rationalrewards" if cuda_available() else ("remote" if any(task_urls.values()) else "tiny")
    if name == "tiny":
        return _tiny(cache_dir, requested)

    generators = {
        Task.T2I: GeneratorConfig(task=Task.T2I, model_id=env.get("RR_T2I_MODEL") or TEXT_TO_IMAGE_ID,
                                  cpu_offload=low_memory, quantize_4bit=low_memory),
        Task.EDIT: GeneratorConfig(task=Task.EDIT, model_id=env.get("RR_EDIT_MODEL") or EDIT_ID,
                                   cpu_offload=low_memory, quantize_4bit=low_memory),
    }
    if name == "remote":
        return Preset("remote", "openai", _remote_critics(task_urls, env), generators, requested=requested,
                      description="critic at an OpenAI-compatible server; generators local")
    critic_models = {Task.T2I: env.get("RR_CRITIC_T2I_MODEL") or CRITIC_IDS[Task.T2I],
                     Task.EDIT: env.get("RR_CRITIC_EDIT_MODEL") or CRITIC_IDS[Task.EDIT]}
    settings = {task: {"model": model, "tasks": (task.value,), "quantization": "4bit" if low_memory else "none"}
                for task, model in critic_models.items()}
    return Preset("rationalrewards", "transformers", settings, generators, requested=requested,
                  description="RationalRewards-8B critics in process" + (" (4-bit, offload)" if low_memory else ""))


def _remote_critics(task_urls: dict[Task, str | None], env: Mapping[str, str]) -> dict[Task, dict[str, Any]]:
    """One server critic per task. Tasks that end up at the same URL and model share one critic
    (one server serving both tasks); a task without any URL has no critic (its requests get a clear
    "no critic for this task" error)."""
    if not any(task_urls.values()):
        raise ValueError("preset remote needs a critic URL: set RR_CRITIC_URL (or RR_CRITIC_T2I_URL / "
                         "RR_CRITIC_EDIT_URL) or pass --critic-url")
    wanted = {task: (url, env.get(f"RR_CRITIC_{task.name}_MODEL") or env.get("RR_CRITIC_MODEL", ""))
              for task, url in task_urls.items() if url}
    critics: dict[Task, dict[str, Any]] = {}
    for task, (url, model) in wanted.items():
        sharing = tuple(t.value for t, target in wanted.items() if target == (url, model))
        critics[task] = {"base_url": url, "model": model, "api_key": env.get("RR_CRITIC_API_KEY") or "EMPTY",
                         "tasks": sharing,
                         "constrained": env.get("RR_CRITIC_CONSTRAINED", "") in ("1", "true", "yes")}
    return critics


def _tiny(cache_dir: str | None, requested: str) -> Preset:
    from rr_core.generators.tiny import tiny_generator_config

    critic = tiny_critic_settings(cache_dir)
    generators = {task: tiny_generator_config(task, cache_dir) for task in Task}
    return Preset("tiny", "transformers", {Task.T2I: critic, Task.EDIT: critic}, generators,
                  banner=TINY_BANNER, requested=requested, description="tiny random-weight models (offline)")


@dataclass
class Studio:
    """The loaded models of a preset. Models load on first use, each once, thread-safely.

    Each model has its own load lock, so a slow load (or a remote critic's start-up check) only
    holds up the requests that need that very model: a generation never waits on a critic server.
    """

    preset: Preset
    _critics: dict[str, Any] = field(default_factory=dict)
    _generators: dict[Task, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _load_locks: dict[Any, threading.Lock] = field(default_factory=dict)

    def critic(self) -> TaskRouter:
        """One critic per task; tasks that share settings share one loaded model."""
        per_task = {}
        for task, settings in self.preset.critic_settings.items():
            key = repr(sorted(settings.items()))
            per_task[task] = self._load_once(self._critics, key, lambda s=settings: self._load_critic(s))
        return TaskRouter(per_task)

    def _load_critic(self, settings: dict[str, Any]):
        return factory.build_critic(self.preset.critic_kind, settings)

    def generator(self, task: Task | str):
        task = Task.parse(task)

        def load():
            from rr_core.generators.factory import load_generator

            return load_generator(self.preset.generators[task])
        return self._load_once(self._generators, task, load)

    def _load_once(self, loaded: dict, key: Any, load) -> Any:
        """`loaded[key]`, loading it under that model's own lock; `_lock` is only held for dict access."""
        with self._lock:
            if key in loaded:
                return loaded[key]
            lock = self._load_locks.setdefault((id(loaded), key), threading.Lock())
        with lock:
            with self._lock:
                if key in loaded:
                    return loaded[key]
            model = load()
            with self._lock:
                loaded[key] = model
            return model

    def loop(self, task: Task | str) -> RefineLoop:
        task = Task.parse(task)
        return RefineLoop(self.generator(task), self.critic(), task)

    def loaded(self) -> dict[str, bool]:
        return {"critic": bool(self._critics), **{f"generator_{t.value}": t in self._generators for t in Task}}
