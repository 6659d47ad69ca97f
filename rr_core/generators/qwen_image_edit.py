"""Image editing with Qwen-Image-Edit-2509 (QwenImageEditPlusPipeline).

Its guidance is real classifier-free guidance (`true_cfg_scale`, applied only with a negative
prompt), so the request's `guidance` maps there and an empty negative prompt becomes " ", as the
model card does; the transformer is not guidance-distilled.
"""

from __future__ import annotations

from typing import Any

from rr_core.generators.base import GenerationRequest, Generator
from rr_core.model_ids import QWEN_IMAGE_EDIT_ID
from rr_core.rubric import Task

DEFAULT_TRUE_CFG = 4.0


class QwenImageEditGenerator(Generator):
    """QwenImageEditPlusPipeline with one source image."""

    task = Task.EDIT
    supports_edit = True
    family = "qwen_image_edit"
    quantized_components = ("transformer", "text_encoder")  # 20B transformer, 7B Qwen2.5-VL encoder

    @classmethod
    def default_model_id(cls) -> str:
        return QWEN_IMAGE_EDIT_ID

    @classmethod
    def pipeline_class(cls) -> Any:
        from diffusers import QwenImageEditPlusPipeline

        return QwenImageEditPlusPipeline

    def _call_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        source, width, height = self._edit_source(request)
        kwargs: dict[str, Any] = {
            "image": [source],
            "width": width,
            "height": height,
            "true_cfg_scale": DEFAULT_TRUE_CFG if request.guidance is None else request.guidance,
            "negative_prompt": request.negative_prompt if request.negative_prompt.strip() else " ",
        }
        if request.steps is not None:
            kwargs["num_inference_steps"] = request.steps
        return kwargs
