"""What every generator backend shares: the configuration, the request, input checks and seeding.

A backend (one file per diffusers pipeline family) only loads its pipeline and maps a
`GenerationRequest` onto that pipeline's `__call__` keywords. Checks, seeds, source-image
preparation, LoRA and device placement live here once, so text-to-image and both edit families
behave alike: same errors for the same bad input, same seed for the same candidate.

Seeding rule: candidate i of a request with seed s is generated from its own CPU
`torch.Generator` seeded s + i, in one batched pipeline call. So candidate i can be reproduced
alone with `seed=s + i, num_candidates=1`, on any device.
"""

from __future__ import annotations

import abc
import gc
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from rr_core.config import from_dict
from rr_core.errors import InvalidImage, InvalidRequest, model_unavailable
from rr_core.images import fit_to_grid, load_image
from rr_core.limits import MAX_CANDIDATES, MAX_REQUEST_CHARS, MAX_SEED, MAX_STEPS
from rr_core.prompts import validate_request
from rr_core.rubric import Task

logger = logging.getLogger(__name__)

MIN_SIDE = 16
MAX_SIDE = 2048
SIZE_MULTIPLE = 16  # FLUX and Qwen-Image latents: 8x VAE downsampling, then 2x2 patch packing
SOURCE_MAX_SIDE = 1024
LORA_ADAPTER_NAME = "rr_lora"

DTYPES = ("auto", "bf16", "fp16", "fp32")
ProgressCallback = Callable[[int, int], None]


class UnsupportedGenerator(InvalidRequest):
    """A configuration naming a task, family or option that no backend supports."""


@dataclass
class GeneratorConfig:
    """How to load one generator. Plain values, so it reads from YAML or the command line.

    Unknown keys are rejected by `from_dict`, so a typo never silently falls back to a default.
    """

    task: Task = Task.T2I
    """t2i (text-to-image) or edit (image editing); picks the backend family with `model_id`."""
    model_id: str | None = None
    """A diffusers repo id or a local folder; None takes rr_core.model_ids' default for the task."""
    family: str | None = None
    """Force a backend ("text_to_image", "flux_kontext", "qwen_image_edit"); None infers it."""
    dtype: str = "auto"
    """Weights dtype: bf16, fp16, fp32, or auto (bf16 on CUDA, fp32 on CPU where bf16 is slow)."""
    device: str = "auto"
    """torch device, or auto (cuda when available, else cpu)."""
    cpu_offload: bool = False
    """Keep components on the CPU and move each to the GPU only while it runs (small GPUs)."""
    quantize_4bit: bool = False
    """Load the transformer (and Qwen's text encoder) in 4-bit NF4 with bitsandbytes; needs CUDA."""
    lora_path: str | None = None
    """Optional LoRA weights in diffusers format (a folder or .safetensors file) for the transformer."""
    lora_scale: float = 1.0
    """Strength of the LoRA; 0 gives the base model's output."""
    width: int | None = None
    """Default text-to-image width when a request gives none; None uses the pipeline's default."""
    height: int | None = None
    """Default text-to-image height when a request gives none; None uses the pipeline's default."""
    max_source_side: int = SOURCE_MAX_SIDE
    """Edit sources are downscaled to at most this long edge, both sides multiples of 16."""
    true_cfg_scale: float | None = None
    """FLUX only: real classifier-free guidance with the negative prompt when > 1 (doubles compute)."""

    def __post_init__(self) -> None:
        try:
            self.task = Task.parse(self.task)
        except ValueError as exc:
            raise UnsupportedGenerator(str(exc)) from None
        if self.dtype not in DTYPES:
            raise UnsupportedGenerator(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}.")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                check_side(name, value)
        if self.max_source_side < MIN_SIDE:
            raise UnsupportedGenerator(
                f"max_source_side must be at least {MIN_SIDE}, got {self.max_source_side}."
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GeneratorConfig:
        """Build from a mapping (a YAML section), rejecting keys the config does not have."""
        return from_dict(cls, values, "generator", UnsupportedGenerator)


def check_side(name: str, value: object) -> None:
    """A width or height the FLUX and Qwen-Image latents accept: an int multiple of 16 in range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"The {name} must be a whole number of pixels, got {value!r}.")
    if not MIN_SIDE <= value <= MAX_SIDE or value % SIZE_MULTIPLE:
        raise InvalidRequest(
            f"The {name} must be a multiple of {SIZE_MULTIPLE} "
            f"between {MIN_SIDE} and {MAX_SIDE}, got {value}."
        )


@dataclass(frozen=True)
class GenerationRequest:
    """One generation call: a prompt, and for edits the source image; None means the model default.

    `guidance` is the pipeline's main guidance knob: FLUX's distilled guidance (guidance_scale;
    ignored by FLUX.1-schnell), Qwen-Image-Edit's classifier-free guidance (true_cfg_scale).
    `negative_prompt` is used by pipelines that take one and ignored, with a log line, otherwise.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    num_candidates: int = 1
    source_image: Image.Image | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # The one request rule (rr_core.prompts): a direct caller gets the loop's and the critic's errors.
        object.__setattr__(self, "prompt", validate_request(self.prompt))
        if not isinstance(self.negative_prompt, str) or len(self.negative_prompt) > MAX_REQUEST_CHARS:
            raise InvalidRequest(
                f"The negative prompt must be text of at most {MAX_REQUEST_CHARS} characters."
            )
        if isinstance(self.num_candidates, bool) or not isinstance(self.num_candidates, int):
            raise InvalidRequest(f"num_candidates must be a whole number, got {self.num_candidates!r}.")
        if not 1 <= self.num_candidates <= MAX_CANDIDATES:
            raise InvalidRequest(
                f"num_candidates must be between 1 and {MAX_CANDIDATES}, got {self.num_candidates}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidRequest(f"The seed must be a whole number, got {self.seed!r}.")
        if not 0 <= self.seed <= MAX_SEED - self.num_candidates:
            raise InvalidRequest(
                f"The seed must be between 0 and {MAX_SEED - self.num_candidates}, got {self.seed}."
            )
        if self.steps is not None:
            if isinstance(self.steps, bool) or not isinstance(self.steps, int):
                raise InvalidRequest(f"steps must be a whole number, got {self.steps!r}.")
            if not 1 <= self.steps <= MAX_STEPS:
                raise InvalidRequest(f"steps must be between 1 and {MAX_STEPS}, got {self.steps}.")
        if self.guidance is not None and not 0.0 <= float(self.guidance) <= 100.0:
            raise InvalidRequest(f"guidance must be between 0 and 100, got {self.guidance}.")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                check_side(name, value)
        if self.source_image is not None and not isinstance(self.source_image, Image.Image):
            raise InvalidImage(
                f"The source image must be a PIL image, got {type(self.source_image).__name__}."
            )

    def candidate_seeds(self) -> list[int]:
        """The seed of each candidate: candidate i is reproducible alone with this seed."""
        return [self.seed + i for i in range(self.num_candidates)]


def prepare_source(image: Image.Image, max_side: int = SOURCE_MAX_SIDE) -> Image.Image:
    """An edit source as the pipelines get it: 8-bit RGB, long edge <= max_side, sides multiples of 16."""
    return fit_to_grid(load_image(image), max_side=max_side, multiple=SIZE_MULTIPLE)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def _dtype_keyword() -> str:
    """diffusers 0.42 renamed from_pretrained's torch_dtype to dtype (the old name warns)."""
    import diffusers
    from packaging.version import Version

    return "dtype" if Version(diffusers.__version__).release >= (0, 42) else "torch_dtype"


def candidate_generators(seeds: list[int]):
    """One CPU torch.Generator per candidate, so noise does not depend on the device or batch size."""
    import torch

    return [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]


class Generator(abc.ABC):
    """A loaded diffusers pipeline for one task. `generate` is the one entry point.

    Subclasses set `task`, `supports_edit`, the pipeline class they load, which components 4-bit
    loading quantizes, and implement `_call_kwargs` (request to pipeline keywords).
    """

    task: ClassVar[Task]
    supports_edit: ClassVar[bool]
    family: ClassVar[str]
    quantized_components: ClassVar[tuple[str, ...]] = ("transformer",)

    def __init__(self, config: GeneratorConfig, pipeline: Any | None = None) -> None:
        """Load the pipeline named by `config` (or wrap an already loaded `pipeline`)."""
        if Task.parse(config.task) is not self.task:
            raise UnsupportedGenerator(
                f"The {self.family} backend does {self.task.value}, "
                f"but the config asks for {config.task.value}."
            )
        self.config = config
        self.model_id = config.model_id or self.default_model_id()
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.pipeline = pipeline if pipeline is not None else self._load()
        self._call_parameters = set(inspect.signature(self.pipeline.__call__).parameters)
        self.lora_scale: float | None = None
        if config.lora_path:
            self.load_lora(config.lora_path, config.lora_scale)

    # 1. Loading -----------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def default_model_id(cls) -> str:
        """The checkpoint used when the config names none."""

    @classmethod
    @abc.abstractmethod
    def pipeline_class(cls) -> Any:
        """The diffusers pipeline class `from_pretrained` is called on."""

    def _quantization_config(self):
        if not self.config.quantize_4bit:
            return None
        import torch
        from diffusers import PipelineQuantizationConfig

        if not (self.device.startswith("cuda") and torch.cuda.is_available()):
            raise UnsupportedGenerator("4-bit loading (bitsandbytes NF4) needs a CUDA GPU.")
        return PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit",
            quant_kwargs={
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_compute_dtype": self.dtype,
            },
            components_to_quantize=list(self.quantized_components),
        )

    def _load(self) -> Any:
        logger.info("loading %s (%s) on %s as %s", self.model_id, self.family, self.device, self.dtype)
        kwargs: dict[str, Any] = {_dtype_keyword(): self.dtype}
        quantization = self._quantization_config()
        if quantization is not None:
            kwargs["quantization_config"] = quantization
        try:
            pipeline = self.pipeline_class().from_pretrained(self.model_id, **kwargs)
        except OSError as exc:  # not downloaded and no hub, a wrong id or path
            raise model_unavailable(self.model_id, f"{self.task.value} generator", exc,
                                    "RR_T2I_MODEL" if self.task is Task.T2I else "RR_EDIT_MODEL") from exc
        if self.config.cpu_offload:
            pipeline.enable_model_cpu_offload(device=self.device)
        else:
            pipeline.to(self.device)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def load_lora(self, path: str | Path, scale: float = 1.0) -> None:
        """Load LoRA weights (diffusers format) into the transformer, replacing any loaded before."""
        path = Path(path)
        if not path.exists():
            raise InvalidRequest(f"No LoRA weights at {path}.")
        if self.lora_scale is not None:
            self.pipeline.delete_adapters(LORA_ADAPTER_NAME)
        if path.is_file():
            self.pipeline.load_lora_weights(
                str(path.parent), weight_name=path.name, adapter_name=LORA_ADAPTER_NAME
            )
        else:
            self.pipeline.load_lora_weights(str(path), adapter_name=LORA_ADAPTER_NAME)
        self.lora_scale = None
        self.set_lora_scale(scale)

    def set_lora_scale(self, scale: float) -> None:
        """Change the loaded LoRA's strength without reloading it; 0 gives the base model's output."""
        self.pipeline.set_adapters([LORA_ADAPTER_NAME], adapter_weights=[float(scale)])
        self.lora_scale = float(scale)

    def unload(self) -> None:
        """Drop the pipeline and free its memory (switching models on one GPU)."""
        import torch

        self.pipeline = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # 2. Generation --------------------------------------------------------------------------

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback | None = None
    ) -> list[Image.Image]:
        """Images for `request`: `num_candidates` of them, from one batched pipeline call.

        `progress(step, total)` is called after each denoising step (UI progress bars).
        """
        # 1. Check the request against the task.
        if self.pipeline is None:
            raise UnsupportedGenerator("This generator was unloaded; load it again to generate.")
        if self.supports_edit and request.source_image is None:
            raise InvalidRequest("An edit needs a source image.")
        if not self.supports_edit and request.source_image is not None:
            raise InvalidRequest("Text-to-image takes no source image; use an edit model for edits.")
        # 2. Map the request onto the pipeline's keywords.
        kwargs = self._call_kwargs(request)
        if request.negative_prompt.strip():
            if "negative_prompt" in self._call_parameters:
                kwargs["negative_prompt"] = request.negative_prompt
            else:
                logger.info("%s takes no negative prompt; ignoring it", self.family)
        kwargs["num_images_per_prompt"] = request.num_candidates
        kwargs["generator"] = candidate_generators(request.candidate_seeds())
        kwargs["output_type"] = "pil"
        if progress is not None:
            total = kwargs.get("num_inference_steps") or 0

            def on_step(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
                progress(step + 1, total or pipeline.num_timesteps)
                return callback_kwargs

            kwargs["callback_on_step_end"] = on_step
        # 3. One batched call; candidate i used the generator seeded seed + i.
        images = self.pipeline(prompt=request.prompt, **kwargs).images
        if len(images) != request.num_candidates:
            raise RuntimeError(
                f"{self.family} returned {len(images)} images for {request.num_candidates} candidates."
            )
        return list(images)

    @abc.abstractmethod
    def _call_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        """The pipeline keywords for `request` other than prompt, negative prompt, batch and seeds."""

    def _edit_source(self, request: GenerationRequest) -> tuple[Image.Image, int, int]:
        """The prepared source image and the output size (the request's, else the source's)."""
        source = prepare_source(request.source_image, self.config.max_source_side)
        width = request.width or source.width
        height = request.height or source.height
        return source, width, height
