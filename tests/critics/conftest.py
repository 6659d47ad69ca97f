"""Shared fixtures: the tiny offline critic, built once per run under RR_CACHE_DIR, and test images."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from rr_core.critics.tiny import ensure_tiny_critic
from rr_core.critics.chat_model import ChatModel
from rr_core.critics.transformers_critic import TransformersCriticConfig


@pytest.fixture(scope="session")
def tiny_critic_path() -> Path:
    return ensure_tiny_critic()


@pytest.fixture(scope="session")
def tiny_chat_model(tiny_critic_path: Path) -> ChatModel:
    """The tiny critic loaded once in fp32 on CPU; tests build critics with their own settings around it."""
    return ChatModel.load(TransformersCriticConfig(model=str(tiny_critic_path), tasks=("t2i", "edit")))


def solid(width: int, height: int, color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), color)


def gradient(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    return image
