"""Text-to-image with any diffusers text-to-image checkpoint (default FLUX.1-schnell).

`AutoPipelineForText2Image` reads the checkpoint's model_index.json, so one backend serves FLUX,
Qwen-Image, SDXL and the tiny offline FLUX alike.
"""

from __future__ import annotations

from typing import Any

from rr_core.generators.base import GenerationRequest, Generator
from rr_core.model_ids import TEXT_TO_IMAGE_ID
from rr_core.rubric import Task

SCHNELL_STEPS = 4  # FLUX.1-schnell is timestep-distilled for 1-4 steps; the pipeline default is 28


class TextToImageGenerator(Generator):
    """A prompt in, `num_candidates` images out."""

    task = Task.T2I
    supports_edit = False
    family = "text_to_image"

    @classmethod
    def default_model_id(cls) -> str:
        return TEXT_TO_IMAGE_ID

    @classmethod
    def pipeline_class(cls) -> Any:
        from diffusers import AutoPipelineForText2Image

        return AutoPipelineForText2Image

    def _call_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        steps = request.steps
        if steps is None and "schnell" in self.model_id.lower():
            steps = SCHNELL_STEPS
        if steps is not None:
            kwargs["num_inference_steps"] = steps
        if request.guidance is not None:
            kwargs["guidance_scale"] = request.guidance
        width = request.width or self.config.width
        height = request.height or self.config.height
        if width is not None:
            kwargs["width"] = width
        if height is not None:
            kwargs["height"] = height
        if self.config.true_cfg_scale is not None and "true_cfg_scale" in self._call_parameters:
            kwargs["true_cfg_scale"] = self.config.true_cfg_scale
        return kwargs
