"""What the database records and the exports carry when trained artefacts are loaded, and sessions
made on the command line (issue 14 items 3, 4, 5): real tiny models, a temporary database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from rr_core.generators.tiny import ensure_tiny_lora
from rr_core.model_identity import artefact_id
from rr_core.presets import Artefacts, Models, resolve_preset
from storage.db import make_engine
from storage.images import ImageStore
from storage.migrate import upgrade_to_head
from storage.models import CritiqueRow, CandidateRow
from studio.container import Services
from studio.refine import main as studio_refine

pytestmark = pytest.mark.slow
FAST = {"rounds": 1, "steps": 2, "stop_threshold": None, "candidates": 1}


def services_over(root: Path, models=None) -> Services:
    url = f"sqlite:///{root / 'studio.sqlite3'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    return Services(models or Models(resolve_preset("tiny", env={})), engine, ImageStore(root / "images"),
                    exports_dir=root / "exports", database_url_text=url)


def test_app_session_records_the_student_and_the_lora(tmp_path, critic_adapter):
    lora = ensure_tiny_lora()
    preset = resolve_preset("tiny", env={}, artefacts=Artefacts(critic_adapter=str(critic_adapter),
                                                                t2i_lora=str(lora)))
    services = services_over(tmp_path, Models(preset))
    try:
        view = None
        for view in services.run_loop(None, "three red circles", FAST):
            pass
        assert view is not None and view.run.candidate_ids
        with services.sessions() as db:
            critique = db.scalars(select(CritiqueRow)).one()
            row = db.scalars(select(CandidateRow)).one()
            assert critique.model_id == artefact_id(critic_adapter)
            assert row.generator_settings["model"].endswith(f"+{artefact_id(lora)}")
        # The view says which models made the result.
        assert artefact_id(critic_adapter) in view.models_line and artefact_id(lora) in view.models_line
        reopened = services.open_session(None, view.session_id)
        assert reopened.models_line == view.models_line
    finally:
        services.engine.dispose()


def test_a_cli_session_reaches_the_sessions_view_and_the_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'studio.sqlite3'}"
    code = studio_refine(["--prompt", "a lighthouse at dusk", "--preset", "tiny", "--rounds", "2", "--steps", "2",
                          "--no-threshold", "--retries", "0", "--database-url", url, "--quiet",
                          "--out", str(tmp_path / "out")])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    services = services_over(tmp_path)
    try:
        listed = services.list_sessions(None)
        assert [s["id"] for s in listed] == [summary["session_id"]]
        opened = services.open_session(None, summary["session_id"])
        assert len(opened.rounds) == 2 and opened.request == "a lighthouse at dusk"
        exported = services.export(None, "rl-prompts")
        records = [json.loads(line) for line in Path(exported["file"]).read_text().splitlines()]
        assert any(r.get("prompt") == "a lighthouse at dusk" for r in records)
    finally:
        services.engine.dispose()


def test_cli_user_and_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'studio.sqlite3'}"
    assert studio_refine(["--prompt", "x", "--preset", "tiny", "--database-url", url, "--user", "a:b", "--quiet"]) == 2
    assert "cannot contain ':'" in capsys.readouterr().err
    assert studio_refine(["--prompt", "x", "--preset", "tiny", "--database-url", url, "--quiet",
                          "--t2i-lora", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    code = studio_refine(["--prompt", "a small boat", "--preset", "tiny", "--rounds", "1", "--steps", "2",
                          "--no-threshold", "--retries", "0", "--database-url", url, "--user", "alice", "--quiet"])
    assert code == 0
    services = services_over(tmp_path)
    try:
        with services.sessions() as db:
            from storage.models import SessionRow
            owners = db.scalars(select(SessionRow.owner_id)).all()
        assert owners == ["alice"]
    finally:
        services.engine.dispose()


def test_the_files_only_cli_loads_the_lora_and_names_it(tmp_path):
    from rr_core.refine import main as files_refine

    lora = ensure_tiny_lora()
    out = tmp_path / "fox"
    assert files_refine(["--prompt", "a red fox", "--preset", "tiny", "--rounds", "1", "--steps", "2",
                         "--no-threshold", "--retries", "0", "--t2i-lora", str(lora), "--out", str(out),
                         "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["generators"]["t2i"].endswith(f"+{artefact_id(lora)}")
    assert not summary["errors"] and len(summary["rounds"][0]["candidates"]) == 1
    assert not (tmp_path / "studio.sqlite3").exists()
