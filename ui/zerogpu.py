"""ZeroGPU on Hugging Face Spaces: one short GPU call per model call, each declaring its own duration.

ZeroGPU lends a Space a GPU only for the length of a function decorated with `spaces.GPU`, and a
call that outlives the duration it declared is cut off (the default is 60 s). A whole refinement
loop (several rounds of generation plus an 8B critique per candidate) is far longer than that, and
holding the GPU for all of it would lock every other visitor out. So the loop is not decorated:
each round's *generation* and each *critique batch* is its own GPU call, the loop streams its events
between calls, and every call declares a duration computed from its own arguments (steps,
candidates, image size; the number of critiques and their token budget), with a margin.

How it is wired: `install(models)` makes the `rr_core.presets.Models` hand out proxies whose
`generate`, `critique_many`, `critique` and `stream` go through the module-level functions below,
decorated at import time (ZeroGPU wants its decorated functions to exist when the app starts). The
arguments cross into ZeroGPU's worker process by pickling, so a proxy passes the model's key in
`_MODELS` (the worker is forked after the models loaded, so it has them) and never a `threading.Event`
or a progress callback. Off ZeroGPU `spaces.GPU` returns the function unchanged: the proxies then
cost one extra call.

Each call asks for the ZeroGPU size the plan chose (studio.fit: `large`, half an NVIDIA RTX Pro 6000
Blackwell with 48 GB, or `xlarge`, the whole card with 96 GB, which costs twice the quota; hub docs,
spaces-zerogpu.md). The per-call figures are estimates for that card, not measurements (bench/README.md
has CPU figures only; see `GpuFigures`); tests/spaces/test_durations.py holds them against published
figures. Nothing here has been run on a real ZeroGPU Space.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rr_core.errors import InvalidRequest

try:
    import spaces
    from spaces.config import Config as _SpacesConfig
except ImportError:  # the package is in requirements.txt; without it nothing here needs a GPU lease
    spaces = None
    _SpacesConfig = None

DEFAULT_SIDE = 1024
"""The generators' default output side (FLUX.1 and Kontext), used when a request leaves size unset."""


@dataclass(frozen=True)
class GpuFigures:
    """Seconds per unit of GPU work, used to declare each call's duration. Estimates, not measurements:

    - FLUX.1 (12B) at 1024x1024: a published RTX 4090 benchmark renders 30 steps in 16-bit, text
      encoding and VAE decode included, in 6.2 s (about 0.2 s per step). ZeroGPU's RTX Pro 6000
      Blackwell is the larger chip of the next generation, so a whole card is at least as fast; the
      zerogpu plan runs the transformer in 4-bit NF4, whose dequantisation costs up to about 1.5x.
      We take 0.6 s per step per image, twice that. On a `large` (half-card) call the `spaces`
      package itself stretches the declared duration by 1.5 (0.51.3, `duration_factor` in
      spaces/zero/configs.json). Time scales with the pixel count and, in one batched call, with the
      number of candidates.
    - Qwen3-VL-8B with transformers' plain `generate` in bf16: the weights (about 17.5 GB) bound a
      decode step at about 10 ms on the card's 1.8 TB/s of memory bandwidth (4 ms on an H200);
      per-step Python and kernel-launch overhead put plain `generate` nearer 25 ms. We take 30 ms per
      token. A batch of K critiques decodes together; each extra row adds about 15%.
    - Fixed costs: text encoders, VAE decode and moving weights onto the lent GPU (ZeroGPU copies the
      packed weights in at the start of a call): 15 s for a generation, 15 s for a critique batch.
    - `margin` multiplies the estimate, for a busy host and the first call's kernel warm-up.
    """

    generation_s_per_step: float = 0.6
    generation_fixed_s: float = 15.0
    critique_s_per_token: float = 0.03
    critique_batch_growth: float = 0.15
    critique_fixed_s: float = 15.0
    margin: float = 1.3


FIGURES = GpuFigures()

MAX_DURATION_S = 600
"""The most quota seconds one call may ask for here: its duration times its size's quota cost
(`xlarge` counts twice, as the `spaces` package counts it when it checks the request). ZeroGPU
refuses a call that asks for more than a visitor's allowance ("illegal duration"), so a request that
would need more is refused up front with the setting to lower, rather than queued and cut off."""

QUOTA_COST = {"large": 1, "xlarge": 2}
"""Quota seconds per second of each ZeroGPU size (hub docs: `xlarge` consumes 2x)."""


def generation_seconds(steps: int | None, candidates: int, width: int | None = None, height: int | None = None,
                       figures: GpuFigures = FIGURES) -> int:
    """The duration a generation call declares: steps x candidates x pixel share, plus fixed costs, with
    the margin. `steps` None is the pipeline's default; FLUX.1-schnell uses 4, Kontext 28, so 28."""
    steps = 28 if steps is None else steps
    pixels = (width or DEFAULT_SIDE) * (height or DEFAULT_SIDE) / (DEFAULT_SIDE * DEFAULT_SIDE)
    work = steps * candidates * max(pixels, 0.25) * figures.generation_s_per_step
    return math.ceil((figures.generation_fixed_s + work) * figures.margin)


def critique_seconds(requests: int, max_new_tokens: int, figures: GpuFigures = FIGURES) -> int:
    """The duration a critique batch declares: the token budget at the batch's per-token pace, plus
    fixed costs, with the margin. The budget is the critic's `max_new_tokens` (a critique stops there)."""
    pace = figures.critique_s_per_token * (1 + figures.critique_batch_growth * max(requests - 1, 0))
    return math.ceil((figures.critique_fixed_s + max_new_tokens * pace) * figures.margin)


# --- the decorated calls ------------------------------------------------------------------------

_MODELS: dict[str, Any] = {}
_keys = itertools.count()
_lock = threading.Lock()


def _register(model: Any) -> str:
    with _lock:
        for key, known in _MODELS.items():
            if known is model:
                return key
        key = f"model-{next(_keys)}"
        _MODELS[key] = model
        return key


def _generation_duration(key: str, request: Any) -> int:
    return generation_seconds(request.steps, request.num_candidates, request.width, request.height)


def _critique_duration(key: str, requests: Sequence[Any]) -> int:
    return critique_seconds(len(requests), _max_new_tokens(_MODELS[key]))


def _stream_duration(key: str, request: Any) -> int:
    return critique_seconds(1, _max_new_tokens(_MODELS[key]))


def _max_new_tokens(critic: Any) -> int:
    """The longest critique the critic (or every critic behind a task router) may write."""
    critics = getattr(critic, "critics", None)
    members = list(critics.values()) if isinstance(critics, dict) else [critic]
    return max(getattr(getattr(c, "settings", None), "max_new_tokens", 2048) for c in members)


def _generate(key: str, request: Any) -> list:
    return _MODELS[key].generate(request)


def _critique_many(key: str, requests: Sequence[Any]) -> list:
    return _MODELS[key].critique_many(list(requests))


def _stream(key: str, request: Any) -> Iterator[Any]:
    yield from _MODELS[key].stream(request)


def _decorate(fn: Callable, duration: Callable, size: str | None) -> Callable:
    """`fn` as a ZeroGPU lease declaring `duration(*args)`; the callable is kept as `gpu_duration`."""
    decorated = spaces.GPU(fn, duration=duration, size=size) if spaces is not None else fn
    decorated.gpu_duration = duration
    return decorated


GPU_CALLS: dict[str, dict[str, Callable]] = {
    size: {"generate": _decorate(_generate, _generation_duration, size),
           "critique_many": _decorate(_critique_many, _critique_duration, size),
           "stream": _decorate(_stream, _stream_duration, size)}
    for size in QUOTA_COST
}
"""Each GPU entry point, decorated once per ZeroGPU size: "large" (the platform's default, half an RTX
Pro 6000 Blackwell, 48 GB) and "xlarge" (the whole card, 96 GB, twice the quota). The size is always
passed: the package would otherwise switch to xlarge by itself above its own weight threshold."""


def _size(size: str | None) -> str:
    """The size a proxy's calls ask for: the plan's, "large" when it names none (off ZeroGPU)."""
    size = size or "large"
    if size not in GPU_CALLS:
        raise ValueError(f"unknown ZeroGPU size {size!r}; expected one of {', '.join(GPU_CALLS)}")
    return size


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (the `spaces` package reads SPACES_ZERO_GPU, set by the platform)."""
    return bool(_SpacesConfig is not None and _SpacesConfig.zero_gpu)


def gpu_concurrency(env: dict[str, str] | None = None) -> int:
    """How many GPU events may run at once. On one local GPU: 1 (the models are shared). On ZeroGPU each
    lease runs in its own worker on a lent GPU, so several visitors' loops interleave their short
    calls: RR_ZEROGPU_CONCURRENCY, default 4."""
    if not on_zero_gpu():
        return 1
    env = os.environ if env is None else env
    value = env.get("RR_ZEROGPU_CONCURRENCY", "4")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"RR_ZEROGPU_CONCURRENCY must be a whole number >= 1, got {value!r}")
    return int(value)


def gpu(fn: Callable) -> Callable:
    """Marks a handler that uses the GPU through the models; it is *not* a GPU lease itself.

    The lease is taken per model call (see the module docstring), so a handler stays outside any
    `spaces.GPU` and streams between calls. Kept so the wiring shows which events reach the GPU."""
    return fn


# --- the proxies --------------------------------------------------------------------------------


def _check(duration: int, what: str, size: str) -> None:
    cost = duration * QUOTA_COST[size]
    if cost > MAX_DURATION_S:
        note = f" ({duration} s on an `{size}` GPU, which counts {QUOTA_COST[size]}x)" if cost > duration else ""
        raise InvalidRequest(f"This {what} would need about {cost} s of GPU quota in one call{note}, "
                             f"more than the {MAX_DURATION_S} s a ZeroGPU call may ask for; lower {_LOWER[what]}.")


_LOWER = {"generation": "the steps, the candidates per round or the image size",
          "critique batch": "the candidates per round"}


class GpuGenerator:
    """A loaded generator whose `generate` is one ZeroGPU call; every other attribute is the model's."""

    def __init__(self, generator: Any, size: str | None = None) -> None:
        self._model = generator
        self._key = _register(generator)
        self._size = _size(size)
        self._calls = GPU_CALLS[self._size]

    def generate(self, request: Any, progress: Callable | None = None) -> list:
        """`progress` is not forwarded: a callback cannot cross into ZeroGPU's worker process."""
        _check(_generation_duration(self._key, request), "generation", self._size)
        return self._calls["generate"](self._key, request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class GpuCritic:
    """A loaded critic (or task router) whose critiques are ZeroGPU calls: one per batch, one per stream.

    The loop's `cancel` event is not forwarded (an event cannot be pickled into the worker); an
    in-process critic does not read it anyway, and the loop checks it between calls."""

    def __init__(self, critic: Any, size: str | None = None) -> None:
        self._model = critic
        self._key = _register(critic)
        self._size = _size(size)
        self._calls = GPU_CALLS[self._size]

    def critique_many(self, requests: Sequence[Any], cancel: threading.Event | None = None) -> list:
        _check(_critique_duration(self._key, requests), "critique batch", self._size)
        return self._calls["critique_many"](self._key, list(requests))

    def critique(self, request: Any, cancel: threading.Event | None = None) -> Any:
        return self.critique_many([request], cancel)[0]

    def stream(self, request: Any, cancel: threading.Event | None = None) -> Iterator[Any]:
        _check(_stream_duration(self._key, request), "critique batch", self._size)
        yield from self._calls["stream"](self._key, request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def wrap(kind: str, model: Any, size: str | None = None) -> Any:
    """The ZeroGPU proxy of a loaded model: `kind` is "generator" or "critic"."""
    if kind == "generator":
        return GpuGenerator(model, size)
    if kind == "critic":
        return GpuCritic(model, size)
    raise ValueError(f"unknown model kind {kind!r}; expected 'generator' or 'critic'")


def install(models: Any, *, force: bool = False) -> bool:
    """Route the models' GPU work through the decorated calls when on ZeroGPU (or when `force`d, for
    tests). Returns whether it did. A server critic needs no GPU and is left alone. Call it before
    the models load, and load them on the main thread (app.main does both under the zerogpu profile)."""
    if not (force or on_zero_gpu()):
        return False
    if on_zero_gpu():
        # ZeroGPU emulates CUDA at start only on the main thread; transformers otherwise loads weights
        # in worker threads, which reach the real CUDA init and fail.
        os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")
    size = getattr(getattr(models.preset, "profile", None), "gpu_size", None)
    models.gpu_wrapper = lambda kind, model: wrap(kind, model, size)
    return True
