"""Hardware profiles: which models stay resident, which load per task, bf16 or 4-bit, so a preset fits
the GPU it runs on.

On a Hugging Face Space (SPACE_ID set) the profile is chosen from the hardware: ZeroGPU (the platform
sets SPACES_ZERO_GPU), else the flavour named in SPACE_HARDWARE (set it as a Space variable to choose
without a GPU probe), else the GPU memory torch reports. Elsewhere it is chosen by `--profile` /
RR_PROFILE ("auto" probes the same way; unset keeps the preset's own rules and `--low-memory`).

Weight sizes behind the thresholds come from the models' parameter counts (studio.fit): in bf16 a
RationalRewards-8B critic is about 17.5 GB, FLUX.1-schnell or FLUX.1-Kontext-dev with their text
encoders about 33.7 GB each, so all four about 103 GB and one task's pair about 51 GB. In 4-bit NF4 a
critic is about 6.7 GB and a FLUX pipeline with CPU offload peaks near 12 GB (rr_core.presets).
Activations and the critic's KV cache need headroom on top (studio.fit.HEADROOM_GB).

ZeroGPU is planned by studio.fit: every model stays resident (the platform copies all of them into
each call), so their precision and the call size (`large` 48 GB or `xlarge` 96 GB on an RTX Pro 6000
Blackwell) are chosen so the four fit one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rr_core.presets import ModelPlan
from studio.fit import DEFAULT_LINEUP, HEADROOM_GB, ZEROGPU_SIZES, fit_zerogpu

PROFILES = ("auto", "all-bf16", "task-bf16", "task-4bit", "remote-critic", "zerogpu", "cpu")

HARDWARE_GPU_GB: dict[str, float] = {
    "cpu-basic": 0, "cpu-upgrade": 0,
    "t4-small": 16, "t4-medium": 16,
    "l4x1": 24, "l4x4": 24,
    "a10g-small": 24, "a10g-large": 24, "a10g-largex2": 24, "a10g-largex4": 24,
    "l40sx1": 48, "l40sx4": 48, "l40sx8": 48,
    "a100-large": 80, "a100x4": 80, "a100x8": 80,
    "h100": 80, "h100x8": 80,
    "zero-a10g": ZEROGPU_SIZES["xlarge"],
}
"""GPU memory per device of each Space hardware flavour (the Hub's hardware table). Multi-GPU flavours
count one device: the models are not split across GPUs. ZeroGPU ("zero-a10g" is its historical
flavour name) lends per call half or all of an RTX Pro 6000 Blackwell (studio.fit.ZEROGPU_SIZES)."""

ALL_BF16_GB = DEFAULT_LINEUP.weights_gb(False, False) + HEADROOM_GB
"""All four models in bf16 (about 103 GB) plus headroom."""
TASK_BF16_GB = DEFAULT_LINEUP.weights_gb(False, False) / 2 + HEADROOM_GB
"""One task's critic and generator in bf16 (about 51 GB) plus headroom."""
TASK_4BIT_GB = 20
"""One task's pair in 4-bit with offload (about 18 GB at the peak)."""


@dataclass(frozen=True)
class Hardware:
    """What the app runs on: a Space flavour name when known, GPU memory in GB (0: none), ZeroGPU."""

    flavour: str
    gpu_gb: float
    zero_gpu: bool = False

    def describe(self) -> str:
        if self.zero_gpu:
            return ("ZeroGPU (an RTX Pro 6000 Blackwell per call: `large` half, 48 GB, or `xlarge` whole, "
                    "96 GB)")
        if not self.gpu_gb:
            return f"{self.flavour}: no GPU"
        return f"{self.flavour}: {self.gpu_gb:g} GB GPU"


def detect_hardware(env: Mapping[str, str], measured_gpu_gb: float | None = None) -> Hardware:
    """ZeroGPU from SPACES_ZERO_GPU; else SPACE_HARDWARE's flavour; else the measured GPU memory
    (`measured_gpu_gb`, probed with torch when None)."""
    if env.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true"):
        return Hardware("zero-gpu", ZEROGPU_SIZES["xlarge"], zero_gpu=True)
    flavour = env.get("SPACE_HARDWARE", "").strip().lower()
    if flavour:
        if flavour not in HARDWARE_GPU_GB:
            known = ", ".join(sorted(HARDWARE_GPU_GB))
            raise ValueError(f"unknown SPACE_HARDWARE {flavour!r}; known flavours: {known}")
        return Hardware(flavour, HARDWARE_GPU_GB[flavour], zero_gpu=flavour.startswith("zero"))
    gpu_gb = _probe_gpu_gb() if measured_gpu_gb is None else measured_gpu_gb
    return Hardware("this machine" if gpu_gb else "cpu", gpu_gb)


def _probe_gpu_gb() -> float:
    try:
        import torch

        if torch.cuda.is_available():
            return round(torch.cuda.get_device_properties(0).total_memory / 1e9, 1)
    except ImportError:
        pass
    return 0.0


def requested_profile(flag: str | None, env: Mapping[str, str]) -> str | None:
    """The profile asked for: the flag, else RR_PROFILE, else "auto" on a Space; None elsewhere (the
    preset's own rules)."""
    name = (flag or env.get("RR_PROFILE") or ("auto" if env.get("SPACE_ID") else "")).strip()
    if not name:
        return None
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return name


def choose_profile(name: str, hardware: Hardware, env: Mapping[str, str] | None = None,
                   remote_critics: bool = False) -> ModelPlan:
    """The plan for profile `name` ("auto": the largest one the hardware holds), with the reason. `env`
    (the model overrides, RR_ZEROGPU_SIZE, ZEROGPU_CUDA_TOTAL_MEMORY) sizes the zerogpu plan;
    `remote_critics` (the preset uses a critic server) leaves the critics out of it."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    seen = hardware.describe()
    if name == "auto":
        name = _auto(hardware)
        why = f"chosen for {seen}"
    else:
        why = f"asked for on {seen}"
    if name == "zerogpu":
        return _zerogpu(why, {} if env is None else env, remote_critics)
    return _PLANS[name](why)


def _auto(hardware: Hardware) -> str:
    if hardware.zero_gpu:
        return "zerogpu"
    if hardware.gpu_gb >= ALL_BF16_GB:
        return "all-bf16"
    if hardware.gpu_gb >= TASK_BF16_GB:
        return "task-bf16"
    if hardware.gpu_gb >= TASK_4BIT_GB:
        return "task-4bit"
    return "remote-critic" if hardware.gpu_gb else "cpu"


_PLANS = {
    "all-bf16": lambda why: ModelPlan(
        "all-bf16", f"{why}: all four models resident in bf16", residency="all"),
    "task-bf16": lambda why: ModelPlan(
        "task-bf16", f"{why}: the active task's critic and generator in bf16; the other task loads when used",
        residency="task"),
    "task-4bit": lambda why: ModelPlan(
        "task-4bit", f"{why}: the active task's critic and generator in 4-bit with offload; the other task "
        "loads when used", quantize_critics=True, quantize_generators=True, cpu_offload=True, residency="task"),
    "remote-critic": lambda why: ModelPlan(
        "remote-critic", f"{why}: too small for a critic, so the critic is a server (RR_CRITIC_URL); "
        "generators in 4-bit with offload, one task at a time", quantize_generators=True, cpu_offload=True,
        residency="task", remote_critic=True),
    "cpu": lambda why: ModelPlan(
        "cpu", f"{why}: the critic is a server (RR_CRITIC_URL); without one the tiny offline models",
        residency="task", remote_critic=True),
}


def _zerogpu(why: str, env: Mapping[str, str], remote_critics: bool = False) -> ModelPlan:
    """Every model the preset loads placed on the GPU at start (ZeroGPU copies every one into each
    call), in the precision and call size studio.fit finds to hold them; one generation or one
    critique batch per call."""
    fit = fit_zerogpu(env, remote_critics)
    loaded = "the two generators loaded at start (the critic is a critic server)" if remote_critics else \
        "all four models loaded at start"
    return ModelPlan("zerogpu", f"{why}: {loaded}, {fit.summary}; one generation or one critique batch per call",
                     quantize_critics=fit.quantize_critics, quantize_generators=fit.quantize_generators,
                     residency="all", gpu_size=fit.gpu_size, load_at_start=True, zero_gpu=True)


def plan_for(flag: str | None, env: Mapping[str, str], measured_gpu_gb: float | None = None,
             remote_critics: bool = False) -> ModelPlan | None:
    """The plan `python app.py` uses: None off a Space without --profile / RR_PROFILE."""
    name = requested_profile(flag, env)
    if name is None:
        return None
    return choose_profile(name, detect_hardware(env, measured_gpu_gb), env, remote_critics)
