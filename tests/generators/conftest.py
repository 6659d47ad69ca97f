"""Tiny offline generators, built once per test session under RR_CACHE_DIR (default .cache/test-models)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_cache() -> Path:
    return Path(os.environ.get("RR_CACHE_DIR") or REPO_ROOT / ".cache" / "test-models").resolve()


@pytest.fixture(scope="session")
def t2i_generator(tiny_cache):
    from rr_core.generators import load_generator
    from rr_core.generators.tiny import tiny_generator_config

    return load_generator(tiny_generator_config("t2i", tiny_cache))


@pytest.fixture(scope="session")
def edit_generator(tiny_cache):
    from rr_core.generators import load_generator
    from rr_core.generators.tiny import tiny_generator_config

    return load_generator(tiny_generator_config("edit", tiny_cache))
