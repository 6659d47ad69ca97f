"""Imports run one way: app.py -> studio -> storage -> rr_core (docs/architecture.md). This test reads
every module's imports (top level and inside functions) and fails on one that points back up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"rr_core": ("storage", "studio", "app"), "storage": ("studio", "app"), "studio": ("app",)}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement in the file, absolute names only."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package]:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    assert violations(package) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from storage.db import make_engine\n    import studio.runs\n")
    assert [m for _, m in imported_modules(sample)] == ["os", "storage.db", "studio.runs"]


def test_storage_does_no_protocol_work():
    """Exports read what was stored with a critique; they never rebuild a prompt or re-score."""
    modules = {m for _, m in imported_modules(ROOT / "storage" / "export.py")}
    assert not modules & {"rr_core.prompts", "rr_core.reward"}
