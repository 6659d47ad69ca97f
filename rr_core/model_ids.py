"""The one place that knows model ids. Everything else takes ids from here or from the user."""

from __future__ import annotations

from rr_core.rubric import Task

CRITIC_IDS: dict[Task, str] = {
    Task.T2I: "TIGER-Lab/RationalRewards-8B-T2I",
    Task.EDIT: "TIGER-Lab/RationalRewards-8B-Edit",
}
CRITIC_BASE_ID = "Qwen/Qwen3-VL-8B-Instruct"

TEXT_TO_IMAGE_ID = "black-forest-labs/FLUX.1-schnell"
FLUX_KONTEXT_ID = "black-forest-labs/FLUX.1-Kontext-dev"
QWEN_IMAGE_EDIT_ID = "Qwen/Qwen-Image-Edit-2509"
EDIT_ID = FLUX_KONTEXT_ID

# Names under which the offline random-weight models are saved in the tiny cache folder.
TINY_CRITIC_NAME = "tiny-qwen3-vl"
TINY_TEXT_TO_IMAGE_NAME = "tiny-flux"
TINY_EDIT_NAME = "tiny-flux-kontext"
