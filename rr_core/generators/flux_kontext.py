"""Image editing with FLUX.1-Kontext: the source image and an instruction in, edited images out."""

from __future__ import annotations

from typing import Any

from rr_core.generators.base import GenerationRequest, Generator
from rr_core.model_ids import FLUX_KONTEXT_ID
from rr_core.rubric import Task


class FluxKontextGenerator(Generator):
    """FluxKontextPipeline, fed the source at our documented size rather than Kontext's own presets."""

    task = Task.EDIT
    supports_edit = True
    family = "flux_kontext"

    @classmethod
    def default_model_id(cls) -> str:
        return FLUX_KONTEXT_ID

    @classmethod
    def pipeline_class(cls) -> Any:
        from diffusers import FluxKontextPipeline

        return FluxKontextPipeline

    def _call_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        source, width, height = self._edit_source(request)
        kwargs: dict[str, Any] = {
            "image": source,
            "width": width,
            "height": height,
            # Kontext rescales the output to max_area and the source to its preferred resolutions;
            # both off, so the output is exactly width x height and the source is used as prepared.
            "max_area": width * height,
            "_auto_resize": False,
        }
        if request.steps is not None:
            kwargs["num_inference_steps"] = request.steps
        if request.guidance is not None:
            kwargs["guidance_scale"] = request.guidance
        if self.config.true_cfg_scale is not None:
            kwargs["true_cfg_scale"] = self.config.true_cfg_scale
        return kwargs
