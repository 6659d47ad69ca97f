"""The README's PARROT smoke run, exactly as the README writes it, from a folder holding nothing but
the shipped config: it must prepare its own data and models, keep some rationales, distil and evaluate."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_command() -> list[str]:
    """The README's CPU smoke-run command line (the comment after it removed)."""
    lines = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
             if "parrot_tiny_cpu.yaml" in line and line.startswith("python -m training.parrot")]
    assert len(lines) == 1, lines
    return shlex.split(re.sub(r"\s+#.*$", "", lines[0]))


def test_readme_names_the_smoke_run():
    assert readme_command() == ["python", "-m", "training.parrot", "run", "--config",
                                "training/configs/parrot_tiny_cpu.yaml"]


@pytest.mark.slow
def test_readme_smoke_run_from_a_fresh_checkout(tmp_path):
    command = readme_command()
    config = command[command.index("--config") + 1]
    (tmp_path / config).parent.mkdir(parents=True)
    shutil.copy(ROOT / config, tmp_path / config)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    report = json.loads((tmp_path / "runs/parrot-tiny/filter/report.json").read_text())
    assert report["total"] == 12 and report["kept"] > 0
    assert report["sft_samples"]["pairwise"] == report["kept"]
    student = tmp_path / "runs/parrot-tiny/student"
    assert (student / "merged" / "config.json").is_file()
    assert len((student / "train_log.jsonl").read_text().splitlines()) == 4
    metrics = json.loads((tmp_path / "runs/parrot-tiny/eval/metrics.json").read_text())
    assert metrics["overall"]["pairs"] == 4 and metrics["overall"]["failures"] == 0
    assert "| critic |" in result.stdout
