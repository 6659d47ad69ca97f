"""What the models weigh on a GPU, computed from their parameter counts, and the ZeroGPU plan that fits.

A plan is checked against a memory budget here instead of being assumed: the weights of each model
are its parameter count times the bytes per parameter of its precision (bf16: 2; bitsandbytes NF4:
4 bits plus a block scale, counted as 4.5 bits), and `HEADROOM_GB` is added for what a call computes.

ZeroGPU (hub docs, docs/hub/spaces-zerogpu.md, since the "Blackwell update" of 2026-05-13): each
`spaces.GPU` call gets a size, `large` (the default: half an NVIDIA RTX Pro 6000 Blackwell, 48 GB)
or `xlarge` (a whole one, 96 GB, at twice the quota). Models must be placed on "cuda" when the app
starts, and the `spaces` package (0.51.3, `zero/wrappers.py` worker_init -> `torch.move`) copies
*every* tensor placed there into each call's GPU, whichever model the call uses. So a call's budget
must hold all the models loaded at start: keeping one task on the GPU and the other in CPU RAM
would not lower it (the CPU-held model still has to come onto the GPU inside the call, next to the
resident ones), and loading the other task later would not reach the forked GPU workers. The plan
therefore keeps all four models resident and picks their precision and the call size to fit.

`ZEROGPU_CUDA_TOTAL_MEMORY` (bytes) is an environment variable the `spaces` package reads (0.51.3,
`spaces/config.py`; its default there is an H200 slice's 74.6 GB); the hub docs do not mention it.
When set it can only lower a size's budget, never raise it above the documented share: the
package's own device table reports the whole card (102 GB) even to a `large` call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rr_core.model_ids import CRITIC_BASE_ID, CRITIC_IDS, EDIT_ID, QWEN_IMAGE_EDIT_ID, TEXT_TO_IMAGE_ID
from rr_core.rubric import Task

BF16_BYTES = 2.0
NF4_BYTES = 0.5625
"""4-bit weights (0.5 byte) plus bitsandbytes' per-block scales, rounded up to 4.5 bits a weight."""

HEADROOM_GB = 8.0
"""Room a call needs beyond the weights (an estimate, not a measurement): the CUDA context, a
4-candidate 1024x1024 FLUX step and VAE decode, or a 4-critique batch's KV cache (Qwen3-VL-8B keeps
about 0.15 MB a token; 4 x 4k tokens is about 2.4 GB)."""


@dataclass(frozen=True)
class Part:
    """One module of a model: its parameter count and how many of them NF4 leaves in bf16."""

    name: str
    params: float
    kept_params: float = 0.0
    """Parameters bitsandbytes does not convert (embeddings, the output head, norms)."""
    quantizable: bool = True
    """Whether this code's 4-bit loading quantizes this part at all (FLUX: only the transformer)."""

    def gb(self, four_bit: bool) -> float:
        if not (four_bit and self.quantizable):
            return self.params * BF16_BYTES / 1e9
        return ((self.params - self.kept_params) * NF4_BYTES + self.kept_params * BF16_BYTES) / 1e9


_QWEN3_VL_8B = (Part("Qwen3-VL-8B", 8.77e9, kept_params=1.25e9),)
"""8.77 B parameters; the input embeddings and the untied output head (151,936 x 4,096 each) stay bf16."""
_FLUX_1 = (Part("FLUX.1 transformer", 11.9e9, kept_params=0.12e9),
           Part("T5-XXL encoder", 4.76e9, quantizable=False),
           Part("CLIP-L encoder", 0.123e9, quantizable=False),
           Part("VAE", 0.084e9, quantizable=False))
"""FLUX.1-schnell and FLUX.1-Kontext-dev share the shape: a 12 B transformer (23.8 GB in bf16), T5-XXL
(9.5 GB), CLIP-L (0.25 GB), the VAE (0.17 GB); the generators quantize only the transformer."""
_QWEN_IMAGE_EDIT = (Part("Qwen-Image transformer", 20.4e9, kept_params=0.2e9),
                    Part("Qwen2.5-VL-7B encoder", 8.29e9, kept_params=1.09e9),
                    Part("VAE", 0.127e9, quantizable=False))

MODEL_WEIGHTS: dict[str, tuple[Part, ...]] = {
    **{model_id: _QWEN3_VL_8B for model_id in (*CRITIC_IDS.values(), CRITIC_BASE_ID)},
    TEXT_TO_IMAGE_ID: _FLUX_1,
    EDIT_ID: _FLUX_1,
    QWEN_IMAGE_EDIT_ID: _QWEN_IMAGE_EDIT,
}
"""Parameter counts by model id (the models' cards and safetensors headers, rounded)."""


def model_gb(model_id: str, four_bit: bool) -> float:
    """The weights of `model_id` in GB (1e9 bytes), bf16 or with the 4-bit loading this code uses."""
    return sum(part.gb(four_bit) for part in MODEL_WEIGHTS[model_id])


@dataclass(frozen=True)
class Lineup:
    """The model ids a preset loads: one critic and one generator per task."""

    critics: tuple[str, ...]
    generators: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> tuple[Lineup, list[str]]:
        """The ids the preset will load (RR_* overrides included), and the overrides whose size is
        unknown here (counted as the default model of their role, and said so in the plan's reason)."""
        unknown: list[str] = []

        def known(variable: str, default: str) -> str:
            value = env.get(variable) or default
            if value not in MODEL_WEIGHTS:
                unknown.append(f"{variable}={value}")
                return default
            return value
        critics = tuple(known(f"RR_CRITIC_{task.name}_MODEL", CRITIC_IDS[task]) for task in Task)
        generators = (known("RR_T2I_MODEL", TEXT_TO_IMAGE_ID), known("RR_EDIT_MODEL", EDIT_ID))
        return cls(critics, generators), unknown

    def weights_gb(self, quantize_critics: bool, quantize_generators: bool) -> float:
        """Every model resident at once (ZeroGPU moves them all into each call)."""
        return (sum(model_gb(c, quantize_critics) for c in self.critics)
                + sum(model_gb(g, quantize_generators) for g in self.generators))


DEFAULT_LINEUP = Lineup((CRITIC_IDS[Task.T2I], CRITIC_IDS[Task.EDIT]), (TEXT_TO_IMAGE_ID, EDIT_ID))

ZEROGPU_SIZES: dict[str, float] = {"large": 48, "xlarge": 96}
"""GPU memory per call of each ZeroGPU size in GB, as the hub docs state it (the smaller size first)."""

PRECISIONS: tuple[tuple[bool, bool, str], ...] = (
    (False, False, "all four models in bf16"),
    (False, True, "critics in bf16, the generators' transformers in 4-bit"),
    (True, False, "critics in 4-bit, generators in bf16"),
    (True, True, "critics and the generators' transformers in 4-bit"),
)
"""(quantize critics, quantize generators, what it means), best first: the critic's judgement is what
the studio is for, so it keeps bf16 before the generators do."""

GENERATOR_PRECISIONS: tuple[tuple[bool, bool, str], ...] = (
    (False, False, "the generators in bf16"),
    (False, True, "the generators' transformers in 4-bit"),
)
"""The choices when no critic is loaded (a critic server): only the generators' precision matters."""


def zerogpu_budgets(env: Mapping[str, str]) -> dict[str, float]:
    """GB per call for each size allowed: the documented share, lowered to ZEROGPU_CUDA_TOTAL_MEMORY
    when the platform sets it lower. RR_ZEROGPU_SIZE ("large" / "xlarge") allows only that size."""
    sizes = dict(ZEROGPU_SIZES)
    chosen = env.get("RR_ZEROGPU_SIZE", "").strip().lower()
    if chosen:
        if chosen not in sizes:
            raise ValueError(f"RR_ZEROGPU_SIZE must be one of {', '.join(sizes)}, got {chosen!r}")
        sizes = {chosen: sizes[chosen]}
    reported = env.get("ZEROGPU_CUDA_TOTAL_MEMORY", "").strip()
    if reported:
        if not reported.isdigit():
            raise ValueError(f"ZEROGPU_CUDA_TOTAL_MEMORY must be a number of bytes, got {reported!r}")
        sizes = {size: min(gb, int(reported) / 1e9) for size, gb in sizes.items()}
    return sizes


@dataclass(frozen=True)
class ZeroGpuFit:
    """The chosen precision and call size, with the figures that justify it."""

    quantize_critics: bool
    quantize_generators: bool
    gpu_size: str
    weights_gb: float
    budget_gb: float
    summary: str


def fit_zerogpu(env: Mapping[str, str], remote_critics: bool = False) -> ZeroGpuFit:
    """The best precision (PRECISIONS order) whose weights plus HEADROOM_GB fit a call, on the smallest
    size that holds it. Raises when nothing fits, with what would be needed. With `remote_critics`
    (the preset uses a critic server) only the generators are loaded."""
    lineup, unknown = Lineup.from_env(env)
    if remote_critics:
        lineup = Lineup((), lineup.generators)
    budgets = zerogpu_budgets(env)
    for quantize_critics, quantize_generators, label in (PRECISIONS if lineup.critics else GENERATOR_PRECISIONS):
        weights = lineup.weights_gb(quantize_critics, quantize_generators)
        for size, budget in budgets.items():
            if weights + HEADROOM_GB <= budget:
                note = (f" (sizes unknown for {', '.join(unknown)}: counted as the defaults)"
                        if unknown else "")
                summary = (f"{label}: {weights:.1f} GB of weights + {HEADROOM_GB:g} GB headroom in a "
                           f"`{size}` call ({budget:g} GB){note}")
                return ZeroGpuFit(quantize_critics, quantize_generators, size, weights, budget, summary)
    least = lineup.weights_gb(True, True)
    sizes = ", ".join(f"{size} {gb:g} GB" for size, gb in budgets.items())
    what = "the two generators need" if not lineup.critics else "the four models need"
    raise ValueError(f"No ZeroGPU plan fits: {what} at least {least:.1f} GB + "
                     f"{HEADROOM_GB:g} GB headroom in one call, and the sizes allowed give {sizes}. Allow `xlarge` (unset "
                     "RR_ZEROGPU_SIZE) or use a dedicated GPU Space.")
