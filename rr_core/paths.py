"""Where the project keeps data and caches, chosen by environment variables with sensible defaults."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """RR_DATA_DIR, else /data on Hugging Face Spaces (persistent storage), else ./data."""
    if os.environ.get("RR_DATA_DIR"):
        return Path(os.environ["RR_DATA_DIR"])
    if os.environ.get("SPACE_ID") and Path("/data").is_dir():
        return Path("/data/rationalrewards")
    return Path("data")


def cache_dir() -> Path:
    """RR_CACHE_DIR, else ~/.cache/rationalrewards-studio: where the tiny offline models are saved."""
    if os.environ.get("RR_CACHE_DIR"):
        return Path(os.environ["RR_CACHE_DIR"])
    return Path.home() / ".cache" / "rationalrewards-studio"
