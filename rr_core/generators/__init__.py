"""Generator backends on diffusers: text-to-image and image editing behind one `Generator` interface."""

from rr_core.generators.base import (
    GenerationRequest,
    Generator,
    GeneratorConfig,
    UnsupportedGenerator,
    prepare_source,
)
from rr_core.generators.factory import backend_family, load_generator

__all__ = [
    "GenerationRequest",
    "Generator",
    "GeneratorConfig",
    "UnsupportedGenerator",
    "backend_family",
    "load_generator",
    "prepare_source",
]
