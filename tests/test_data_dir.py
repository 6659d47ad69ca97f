"""The suite never reads or writes the developer's data folder (./data or an exported RR_DATA_DIR)."""

from pathlib import Path

from rr_core.paths import data_dir
from rr_core.prompts import imported_dir
from storage.db import database_url

ROOT = Path(__file__).resolve().parent.parent


def test_data_dir_is_the_sessions_temporary_folder(session_data_dir):
    assert data_dir().resolve() == session_data_dir.resolve()
    assert data_dir().resolve() != (ROOT / "data").resolve()


def test_templates_imported_into_the_checkout_are_not_seen(session_data_dir):
    assert imported_dir().resolve().is_relative_to(session_data_dir.resolve())
    assert not imported_dir().resolve().is_relative_to((ROOT / "data").resolve())


def test_the_default_database_lives_in_the_sessions_folder(session_data_dir):
    assert database_url().startswith(f"sqlite:///{session_data_dir.resolve()}")
