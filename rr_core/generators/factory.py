"""Pick and load the generator backend for a configuration: the task, then the checkpoint's family.

A local folder names its pipeline class in model_index.json; a hub id is matched by name (no
network needed). `GeneratorConfig.family` overrides both.
"""

from __future__ import annotations

import json
from pathlib import Path

from rr_core.generators.base import Generator, GeneratorConfig, UnsupportedGenerator
from rr_core.generators.flux_kontext import FluxKontextGenerator
from rr_core.generators.qwen_image_edit import QwenImageEditGenerator
from rr_core.generators.text_to_image import TextToImageGenerator
from rr_core.model_ids import EDIT_ID
from rr_core.rubric import Task

BACKENDS: dict[str, type[Generator]] = {
    TextToImageGenerator.family: TextToImageGenerator,
    FluxKontextGenerator.family: FluxKontextGenerator,
    QwenImageEditGenerator.family: QwenImageEditGenerator,
}
EDIT_PIPELINE_CLASSES = {
    "FluxKontextPipeline": FluxKontextGenerator.family,
    "QwenImageEditPlusPipeline": QwenImageEditGenerator.family,
}


def _local_pipeline_class(model_id: str) -> str | None:
    index = Path(model_id) / "model_index.json"
    if not index.is_file():
        return None
    return json.loads(index.read_text()).get("_class_name")


def backend_family(config: GeneratorConfig) -> str:
    """The backend family name for `config` (see BACKENDS)."""
    if config.family is not None:
        if config.family not in BACKENDS:
            raise UnsupportedGenerator(
                f"Unknown generator family {config.family!r}; known: {', '.join(sorted(BACKENDS))}."
            )
        return config.family
    if config.task is Task.T2I:
        return TextToImageGenerator.family
    model_id = config.model_id or EDIT_ID
    pipeline_class = _local_pipeline_class(model_id)
    if pipeline_class is not None:
        if pipeline_class not in EDIT_PIPELINE_CLASSES:
            raise UnsupportedGenerator(
                f"{model_id} holds a {pipeline_class}; edits support {', '.join(EDIT_PIPELINE_CLASSES)}."
            )
        return EDIT_PIPELINE_CLASSES[pipeline_class]
    name = model_id.lower()
    if "kontext" in name:
        return FluxKontextGenerator.family
    if "qwen" in name and "edit" in name:
        return QwenImageEditGenerator.family
    raise UnsupportedGenerator(
        f"Cannot tell which edit pipeline {model_id} uses; set family to one of "
        f"{FluxKontextGenerator.family!r} or {QwenImageEditGenerator.family!r}."
    )


def load_generator(config: GeneratorConfig) -> Generator:
    """Load the backend that fits `config`: its pipeline, device placement, quantization and LoRA."""
    backend = BACKENDS[backend_family(config)]
    if backend.task is not config.task:
        raise UnsupportedGenerator(
            f"The {backend.family} backend does {backend.task.value}, not {config.task.value}."
        )
    return backend(config)
