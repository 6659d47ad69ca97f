"""The data flywheel as one test, with commands alone, on the tiny models: an app session -> review and
A/B picks -> PARROT from the database -> the student served and loaded in the app, its critique stored
under its own id -> RL from the database's prompts -> a CLI session whose images are made with the LoRA
and recorded under it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from rr_core.critics.chat_model import ChatModel
from rr_core.critics.transformers_critic import TransformersCriticConfig
from rr_core.model_identity import artefact_id
from rr_core.presets import Artefacts, Models, adapter_base, resolve_preset
from rr_core.serve import build_app, served_name
from storage.db import make_engine
from storage.images import ImageStore
from storage.migrate import upgrade_to_head
from storage.models import CritiqueRow, CandidateRow
from studio.container import Services
from studio.refine import main as studio_refine

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def services_for(data: Path, artefacts: Artefacts | None = None) -> Services:
    url = f"sqlite:///{data / 'studio.sqlite3'}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    return Services(Models(resolve_preset("tiny", env={}, artefacts=artefacts)), engine, ImageStore(data / "images"),
                    exports_dir=data / "exports", database_url_text=url)


def command(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_whole_flywheel(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("RR_DATA_DIR", str(data))
    url = f"sqlite:///{data / 'studio.sqlite3'}"

    # 1. A session in the app, reviewed and compared.
    app = services_for(data)
    try:
        list(app.run_loop(None, "three red circles", {"rounds": 2, "candidates": 2, "stop_threshold": None,
                                                      "steps": 2}))
        while (item := app.next_critique(None)) is not None:
            app.annotate(None, item["critique_id"], {"text_faithfulness": {"verdict": "accept"}})
        for preference in ("A", "B"):
            pair = app.next_pair(None)
            app.pick_pair(None, pair["candidate_a"], pair["candidate_b"], preference)
    finally:
        app.engine.dispose()

    # 2. PARROT straight from the database.
    config = "training/configs/parrot_tiny_cpu.yaml"
    (tmp_path / config).parent.mkdir(parents=True)
    shutil.copy(ROOT / config, tmp_path / config)
    command(["-m", "training.parrot", "run", "--config", config, "--from-db", "--database-url", url], tmp_path)
    adapter = tmp_path / "runs/parrot-tiny/student/adapter"
    assert (adapter / "adapter_config.json").is_file()
    student_id = artefact_id(adapter)

    # 3. The student served reports its own id; loaded in the app, its critiques are stored under it.
    base = adapter_base(str(adapter))
    server = build_app(ChatModel.load(TransformersCriticConfig(model=base, adapter=str(adapter))),
                       served_name(base, str(adapter)))
    assert TestClient(server).get("/v1/models").json()["data"][0]["id"] == student_id
    app = services_for(data, Artefacts(critic_adapter=str(adapter)))
    try:
        view = app.critique(None, "three red circles", Image.new("RGB", (64, 64), "white"))
        assert student_id in view.models_line
        with app.sessions() as db:
            stored = db.scalars(select(CritiqueRow).order_by(CritiqueRow.id.desc())).first()
            assert stored.model_id == student_id
    finally:
        app.engine.dispose()

    # 4. RL on the database's prompts, then a CLI session with the LoRA, recorded in the database.
    out = tmp_path / "rl"
    command(["-m", "training.rl", "--config", str(ROOT / "training/configs/rl_tiny.yaml"), "--from-db",
             "--database-url", url, f"output_dir={out}", "max_steps=1", "save_every=1", "eval.every=0"], tmp_path)
    lora = out / "final"
    assert lora.is_dir()
    assert studio_refine(["--prompt", "three red circles", "--preset", "tiny", "--rounds", "1", "--steps", "2",
                          "--no-threshold", "--retries", "0", "--t2i-lora", str(lora), "--critic-adapter",
                          str(adapter), "--database-url", url, "--quiet"]) == 0
    app = services_for(data)
    try:
        latest = app.list_sessions(None)[0]
        with app.sessions() as db:
            rows = db.scalars(select(CandidateRow).where(CandidateRow.session_id == latest["id"])).all()
            assert rows and all(r.generator_settings["model"].endswith(f"+{artefact_id(lora)}") for r in rows)
            assert all(r.critiques[-1].model_id == student_id for r in rows)
    finally:
        app.engine.dispose()
