"""Model presets: which critic and generators a session uses, and the `Models` that loads them lazily.

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
- auto: a critic URL configured -> remote; else a CUDA GPU -> rationalrewards; else tiny, with a
  banner saying how to get real critiques.

A `ModelPlan` (chosen from the hardware by `studio.profile`, e.g. on a Space) says how the models fit
the GPU: bf16 or 4-bit, CPU offload, whether every model stays resident or only the active task's
critic and generator (switching tasks releases the other pair), and whether the critic must be a
server because the GPU cannot hold it. Without a plan the preset's own rules and `low_memory` apply.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

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


@dataclass(frozen=True)
class ModelPlan:
    """How a preset's models fit the hardware; `studio.profile` chooses one and says why."""

    name: str
    """The profile's name, shown in the health line."""
    reason: str
    """Why it was chosen (the hardware seen), shown in the health line."""
    quantize_critics: bool = False
    """Critics in 4-bit NF4 (about 6 GB each) instead of bf16 (about 17 GB each)."""
    quantize_generators: bool = False
    """Generator transformers in 4-bit NF4."""
    cpu_offload: bool = False
    """Generators' model CPU offload (submodules move to the GPU only while they run)."""
    residency: Literal["all", "task"] = "all"
    """"all": every model stays loaded. "task": only the active task's critic and generator; a run of
    the other task releases them first."""
    remote_critic: bool = False
    """The GPU cannot hold a critic: preset auto picks the server critic (tiny without a URL)."""
    gpu_size: str | None = None
    """The ZeroGPU size each GPU call asks for: "large" (half an RTX Pro 6000 Blackwell, 48 GB) or "xlarge"
    (a whole one, 96 GB, twice the quota); None off ZeroGPU. studio.fit chooses it."""
    load_at_start: bool = False
    """Load every model before serving (ZeroGPU forks its GPU workers from the loaded process)."""
    zero_gpu: bool = False
    """On ZeroGPU: in-process critics decode with plain `generate` (no torch.compile or CUDA graphs,
    which ZeroGPU does not support) and load straight onto "cuda" (its emulated device at start)."""


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
    profile: ModelPlan | None = None

    def describe(self) -> dict[str, Any]:
        """What the UI shows under "models": critic and generator per task."""
        return {
            "preset": self.name,
            "requested": self.requested,
            "critic": {t.value: critic_label(s) for t, s in self.critic_settings.items()},
            "generators": {t.value: generator_id(g) for t, g in self.generators.items()},
            "banner": self.banner,
            "profile": self.profile.name if self.profile else "",
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
                   artefacts: Artefacts | None = None, plan: ModelPlan | None = None) -> Preset:
    """Turn a preset name (and the environment) into concrete settings.

    `critic_max_new_tokens` caps every critique's length (a critique cut off there is marked
    truncated); `prompt_templates` are the user's template files replacing the shipped ones.
    `critic_t2i_url` / `critic_edit_url` give a task its own critic server (else `critic_url` serves
    both). `critic_timeout` (total seconds per critique) and `critic_retries` bound every remote
    critique; unset, RR_CRITIC_TIMEOUT and RR_CRITIC_RETRIES apply, then the defaults. They only
    concern server critics: an in-process critic has no network to wait on. `artefacts` (and their
    env twins) load a critic adapter and generator LoRAs over the preset's models. `plan` (a hardware
    profile) decides quantization, offload and residency instead of `low_memory`.
    """
    env = os.environ if env is None else env
    urls = {Task.T2I: critic_t2i_url or None, Task.EDIT: critic_edit_url or None}
    preset = _resolve(name, critic_url, urls, low_memory, env, cache_dir, plan)
    preset.profile = plan
    if plan is not None and plan.zero_gpu and preset.critic_kind == "transformers":
        for settings in preset.critic_settings.values():
            settings.update(fast_decode="off", device_map="cuda")
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


def critic_server_urls(critic_url: str | None, task_urls: Mapping[Task, str | None],
                       env: Mapping[str, str]) -> dict[Task, str | None]:
    """Each task's critic server: its own URL (argument, then RR_CRITIC_<TASK>_URL), else the shared
    one (argument, then RR_CRITIC_URL); None where none is configured."""
    shared = critic_url or env.get("RR_CRITIC_URL") or None
    return {task: task_urls.get(task) or env.get(f"RR_CRITIC_{task.name}_URL") or shared for task in Task}


def uses_critic_server(name: str, env: Mapping[str, str], *, critic_url: str | None = None,
                       critic_t2i_url: str | None = None, critic_edit_url: str | None = None) -> bool:
    """Whether preset `name` critiques through a server (auto and remote do when one is configured),
    so that no critic takes GPU memory; the same rule `resolve_preset` applies."""
    urls = critic_server_urls(critic_url, {Task.T2I: critic_t2i_url, Task.EDIT: critic_edit_url}, env)
    return name in ("auto", "remote") and any(urls.values())


def _resolve(name: str, critic_url: str | None, task_urls: dict[Task, str | None], low_memory: bool,
             env: Mapping[str, str], cache_dir: str | None, plan: ModelPlan | None = None) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    task_urls = critic_server_urls(critic_url, task_urls, env)
    requested = name
    if name == "auto":
        # A configured server is an explicit choice, so it wins over a local GPU (which then keeps its
        # memory for the generators).
        local = cuda_available() and not (plan and plan.remote_critic)
        name = "remote" if any(task_urls.values()) else ("rationalrewards" if local else "tiny")
    if name == "tiny":
        return _tiny(cache_dir, requested)

    offload, quantize = (plan.cpu_offload, plan.quantize_generators) if plan else (low_memory, low_memory)
    generators = {
        Task.T2I: GeneratorConfig(task=Task.T2I, model_id=env.get("RR_T2I_MODEL") or TEXT_TO_IMAGE_ID,
                                  cpu_offload=offload, quantize_4bit=quantize),
        Task.EDIT: GeneratorConfig(task=Task.EDIT, model_id=env.get("RR_EDIT_MODEL") or EDIT_ID,
                                   cpu_offload=offload, quantize_4bit=quantize),
    }
    if name == "remote":
        return Preset("remote", "openai", _remote_critics(task_urls, env), generators, requested=requested,
                      description="critic at an OpenAI-compatible server; generators local")
    critic_models = {Task.T2I: env.get("RR_CRITIC_T2I_MODEL") or CRITIC_IDS[Task.T2I],
                     Task.EDIT: env.get("RR_CRITIC_EDIT_MODEL") or CRITIC_IDS[Task.EDIT]}
    four_bit = plan.quantize_critics if plan else low_memory
    settings = {task: {"model": model, "tasks": (task.value,), "quantization": "4bit" if four_bit else "none"}
                for task, model in critic_models.items()}
    return Preset("rationalrewards", "transformers", settings, generators, requested=requested,
                  description="RationalRewards-8B critics in process" + (" (4-bit, offload)" if four_bit else ""))


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
class Models:
    """The loaded models of a preset. Models load on first use, each once, thread-safely.

    Each model has its own load lock, so a slow load (or a remote critic's start-up check) only
    holds up the requests that need that very model: a generation never waits on a critic server.

    With a plan of residency "task" only one task's critic and generator are loaded at a time: using
    the other task releases them first (runs on the GPU queue one at a time, so nothing in use is
    released). `gpu_wrapper(kind, model)`, when set (ui.zerogpu on a ZeroGPU Space), wraps each
    in-process model handed out so that its calls become GPU leases.
    """

    preset: Preset
    gpu_wrapper: Callable[[str, Any], Any] | None = None
    _critics: dict[str, Any] = field(default_factory=dict)
    _generators: dict[Task, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _load_locks: dict[Any, threading.Lock] = field(default_factory=dict)
    _router: Any = None
    _active: Task | None = None

    @property
    def residency(self) -> str:
        return self.preset.profile.residency if self.preset.profile else "all"

    def critic(self):
        """One critic per task; tasks that share settings share one loaded model. With residency "task"
        a router that loads each request's task critic when it is used (releasing the other task's)."""
        if self.residency == "task":
            return _ActiveTaskCritic(self)
        if self._router is None:  # one router, so a GPU proxy keeps one key for it
            self._router = TaskRouter({task: self._critic_for(task) for task in self.preset.critic_settings})
        return self._wrap("critic", self._router)

    def task_critic(self, task: Task | str):
        """The critic of one task (after releasing the other task's models under residency "task")."""
        task = Task.parse(task)
        self._activate(task)
        if task not in self.preset.critic_settings:
            return TaskRouter({t: self._critic_for(t) for t in self.preset.critic_settings}).critic_for(task)
        return self._wrap("critic", self._critic_for(task))

    def _critic_for(self, task: Task):
        settings = self.preset.critic_settings[task]
        key = repr(sorted(settings.items()))
        return self._load_once(self._critics, key, lambda s=settings: self._load_critic(s))

    def _load_critic(self, settings: dict[str, Any]):
        return factory.build_critic(self.preset.critic_kind, settings)

    def generator(self, task: Task | str):
        task = Task.parse(task)
        self._activate(task)

        def load():
            from rr_core.generators.factory import load_generator

            return load_generator(self.preset.generators[task])
        return self._wrap("generator", self._load_once(self._generators, task, load))

    def load(self, task: Task | str | None = None) -> None:
        """Load what the plan keeps resident: every model, or under residency "task" the given task's
        (text-to-image when none is given)."""
        tasks = list(Task) if self.residency == "all" else [Task.parse(task or Task.T2I)]
        for each in tasks:
            self.generator(each)
            if self.residency == "task":
                self.task_critic(each)
        if self.residency == "all":
            self.critic()

    def _wrap(self, kind: str, model: Any) -> Any:
        in_process = kind == "generator" or self.preset.critic_kind != "openai"
        return self.gpu_wrapper(kind, model) if self.gpu_wrapper is not None and in_process else model

    def _activate(self, task: Task) -> None:
        """Under residency "task": release the other task's critic and generator before `task` loads."""
        if self.residency != "task":
            return
        with self._lock:
            if self._active == task:
                return
            self._active = task
            released = [self._generators.pop(t) for t in list(self._generators) if t != task]
            keep = repr(sorted(self.preset.critic_settings[task].items())) if task in self.preset.critic_settings else None
            released += [self._critics.pop(k) for k in list(self._critics) if k != keep]
        for model in released:
            unload = getattr(model, "unload", None)
            if callable(unload):
                unload()
        if released:
            logger.info("released %d model(s) of the other task to load %s", len(released), task.value)
            _free_gpu_cache()

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
        generator = self.generator(task)
        return RefineLoop(generator, self.critic(), task)

    def loaded(self) -> dict[str, bool]:
        return {"critic": bool(self._critics), **{f"generator_{t.value}": t in self._generators for t in Task}}


class _ActiveTaskCritic:
    """The critic interface over a Models with residency "task": each request goes to its task's critic,
    loaded (and the other task's models released) when first needed."""

    def __init__(self, studio: Models) -> None:
        self.studio = studio

    @property
    def tasks(self) -> frozenset[Task]:
        return frozenset(self.studio.preset.critic_settings)

    def critic_for(self, task: Task | str):
        return self.studio.task_critic(task)

    def critique_many(self, requests, cancel: threading.Event | None = None) -> list:
        return self._by_task(requests, lambda critic, batch: critic.critique_many(batch, cancel))

    def critique(self, request, cancel: threading.Event | None = None):
        return self.critic_for(request.task).critique(request, cancel)

    def stream(self, request, cancel: threading.Event | None = None):
        return self.critic_for(request.task).stream(request, cancel)

    def compare_many(self, requests, cancel: threading.Event | None = None) -> list:
        return self._by_task(requests, lambda critic, batch: critic.compare_many(batch, cancel))

    def compare(self, request, cancel: threading.Event | None = None):
        return self.critic_for(request.task).compare(request, cancel)

    def _by_task(self, requests, run) -> list:
        results: list = [None] * len(requests)
        for task in dict.fromkeys(Task.parse(r.task) for r in requests):
            indices = [i for i, r in enumerate(requests) if Task.parse(r.task) == task]
            for index, result in zip(indices, run(self.critic_for(task), [requests[i] for i in indices])):
                results[index] = result
        return results


def _free_gpu_cache() -> None:
    try:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
