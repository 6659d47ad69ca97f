"""One command from the studio's database to each trained artefact: `python -m training.parrot run
--from-db` and `python -m training.rl --from-db`, against a database the app's own jobs filled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.studio.conftest import ScriptedModels, make_services

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def studio_db(tmp_path, monkeypatch):
    """A data folder whose database holds two sessions (one t2i with reviewed critiques and A/B picks,
    one edit), as the app writes them; returns its URL."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("RR_DATA_DIR", str(data))
    services = make_services(data, ScriptedModels())
    try:
        list(services.run_loop(None, "two blue circles", {"rounds": 2, "candidates": 2, "stop_threshold": None}))
        list(services.run_loop(None, "add a yellow hat", {"rounds": 1, "candidates": 1},
                               Image.new("RGB", (48, 40), (10, 120, 200))))
        while (item := services.next_critique(None)) is not None:
            services.annotate(None, item["critique_id"], {"text_faithfulness": {"verdict": "accept"}})
        for preference in ("A", "B"):
            pair = services.next_pair(None)
            services.pick_pair(None, pair["candidate_a"], pair["candidate_b"], preference)
    finally:
        services.engine.dispose()
    return f"sqlite:///{data / 'studio.sqlite3'}"


def run(command: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_an_empty_or_missing_database_is_a_clear_error(tmp_path):
    config = "training/configs/parrot_tiny_cpu.yaml"
    missing = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    result = run(["-m", "training.parrot", "filter", "--config", str(ROOT / config), "--from-db",
                  "--database-url", missing, "--set", f"work_dir={tmp_path / 'w'}"], tmp_path, 120)
    assert result.returncode == 2 and "no database at" in result.stderr
    result = run(["-m", "training.rl", "--config", str(ROOT / "training/configs/rl_tiny.yaml"), "--from-db",
                  "--database-url", missing, f"output_dir={tmp_path / 'rl'}"], tmp_path, 120)
    assert result.returncode == 2 and "no database at" in result.stderr
    assert not (tmp_path / "none.sqlite3").exists()

    from storage.db import make_engine
    from storage.migrate import upgrade_to_head

    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    engine = make_engine(empty)
    upgrade_to_head(engine)
    engine.dispose()
    result = run(["-m", "training.parrot", "filter", "--config", str(ROOT / config), "--from-db",
                  "--database-url", empty, "--set", f"work_dir={tmp_path / 'w'}"], tmp_path, 120)
    assert result.returncode == 2 and "nothing to distil yet" in result.stderr
    result = run(["-m", "training.rl", "--config", str(ROOT / "training/configs/rl_tiny.yaml"), "--from-db",
                  "--database-url", empty, f"output_dir={tmp_path / 'rl'}"], tmp_path, 120)
    assert result.returncode == 2 and "no prompts yet" in result.stderr


@pytest.mark.slow
def test_parrot_from_the_database_to_a_student(tmp_path, studio_db):
    config = "training/configs/parrot_tiny_cpu.yaml"
    (tmp_path / config).parent.mkdir(parents=True)
    shutil.copy(ROOT / config, tmp_path / config)
    result = run(["-m", "training.parrot", "run", "--config", config, "--from-db", "--database-url", studio_db],
                 tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    work = tmp_path / "runs/parrot-tiny"
    assert (work / "from-db/parrot.jsonl").is_file() and (work / "from-db/sft.jsonl").is_file()
    report = json.loads((work / "filter/report.json").read_text())
    # The database's 2 judged pairs join the 12 synthetic ones; its reviewed critiques are pointwise samples.
    assert report["total"] == 14
    assert report["sft_samples"]["pointwise"] == 5 and report["sft_samples"]["reviewed"] == 0
    kinds = {json.loads(line)["kind"] for line in (work / "sft.jsonl").read_text().splitlines()}
    assert {"pairwise", "pointwise"} <= kinds
    assert (work / "student/merged/config.json").is_file()


@pytest.mark.slow
def test_rl_from_the_database_to_a_lora(tmp_path, studio_db):
    out = tmp_path / "rl"
    result = run(["-m", "training.rl", "--config", str(ROOT / "training/configs/rl_tiny.yaml"), "--from-db",
                  "--database-url", studio_db, f"output_dir={out}", "max_steps=1", "save_every=1",
                  "eval.every=0"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    prompts = [json.loads(line) for line in (out / "from-db/rl-prompts.jsonl").read_text().splitlines()]
    assert {p["prompt"] for p in prompts if p["task"] == "t2i"} >= {"two blue circles"}
    assert any(out.rglob("pytorch_lora_weights.safetensors")) or any(out.rglob("*.safetensors"))
