"""The README is the user's manual: every flag of every command it documents is named in it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    ["app.py"],
    ["-m", "studio.refine"],
    ["-m", "rr_core.refine"],
    ["-m", "rr_core.serve"],
    ["-m", "rr_core.prompts", "import"],
    ["-m", "storage.export"],
    ["-m", "storage.gc"],
    ["-m", "training.evaluate"],
    ["-m", "training.parrot", "run"],
    ["-m", "training.rl"],
]


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c).removeprefix("-m "))
def test_every_flag_is_in_the_readme(command):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    flags = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", done.stdout)) - {"--help"}
    assert flags, done.stdout
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(flag for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", readme))
    assert not missing, f"{' '.join(command)}: flags the README does not name: {missing}"
