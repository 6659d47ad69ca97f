"""Protocol tests render prompts: keep them off any template imported into the developer's data folder."""

import pytest


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
