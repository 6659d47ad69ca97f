"""Test-wide settings: offline hub, a shared cache for the tiny models, small thread pools, and a
data folder of the session's own.

RR_DATA_DIR points at a temporary folder for the whole session, whatever the shell exported, and
RR_DATABASE_URL is unset (the database is then the SQLite file in that folder): a template a
developer imported into ./data, or their database, must not change what a test sees. Tests that
need a folder of their own still set RR_DATA_DIR per test (tests/protocol does).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("RR_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "test-models"))


@pytest.fixture(scope="session", autouse=True)
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's data folder, set as RR_DATA_DIR before any test runs and restored after."""
    folder = tmp_path_factory.mktemp("rr-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RR_DATA_DIR", str(folder))
        patch.delenv("RR_DATABASE_URL", raising=False)
        yield folder
