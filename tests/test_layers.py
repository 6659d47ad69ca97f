"""Imports run one way: app.py and ui -> studio -> storage -> rr_core, and training reads export files
with rr_core only (docs/architecture.md). This test reads every module's imports (top level and inside
functions) and fails on one that points back up; it also keeps every SQL statement in storage and the
architecture document's file names true."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"rr_core": ("storage", "studio", "ui", "app", "training"),
             "storage": ("studio", "ui", "app", "training"),
             "studio": ("ui", "app"),
             "training": ("storage", "studio", "ui", "app")}
ABOVE_STORAGE = ("studio", "ui", "app.py", "rr_core", "training")
"""Where no SQL is written: every statement lives in storage (docs/architecture.md, Transactions)."""
STATEMENTS = {"select", "insert", "update", "delete", "text", "func", "distinct", "exists", "and_", "or_",
              "case", "literal", "literal_column", "union", "join", "outerjoin"}
"""SQLAlchemy's query constructs."""
SESSION_CALLS = {"execute", "scalar", "scalars", "query", "get", "add", "add_all", "delete", "merge", "flush",
                 "commit", "rollback", "refresh", "exec_driver_sql"}
"""What a database session (named `db` in the application layer) does with SQL."""


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


def _python_files(names: tuple[str, ...]) -> list[Path]:
    out = []
    for name in names:
        path = ROOT / name
        out.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return out


def sql_outside_storage(path: Path) -> list[str]:
    """Query constructs imported from SQLAlchemy, and calls on a database session (any of
    SESSION_CALLS on a name `db`, or `.execute`/`.scalar(s)` on anything), as "line: what"."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
        if isinstance(node, ast.ImportFrom) and node.level == 0 and module.startswith("sqlalchemy"):
            found += [f"{node.lineno}: imports {a.name} from {node.module}" for a in node.names
                      if a.name in STATEMENTS]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver, name = node.func.value, node.func.attr
            on_db = isinstance(receiver, ast.Name) and receiver.id == "db" and name in SESSION_CALLS
            if on_db or name in {"execute", "scalar", "scalars", "exec_driver_sql"}:
                found.append(f"{node.lineno}: calls .{name}()")
    return sorted(found)


def test_no_sql_above_storage():
    """The application layer, the UI, the engine and training call repository functions only."""
    hits = [f"{path.relative_to(ROOT)}:{hit}" for path in _python_files(ABOVE_STORAGE)
            for hit in sql_outside_storage(path)]
    assert hits == []


def test_the_sql_check_sees_statements_and_session_calls(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from sqlalchemy import func, select\nfrom sqlalchemy.orm import Session\n\n"
                      "def f(db, row, other):\n    db.delete(row)\n    x = db.get(Row, 1)\n"
                      "    return other.scalars(select(Row)), {}.get('k'), db.bind\n")
    assert sql_outside_storage(sample) == ["1: imports func from sqlalchemy",
                                           "1: imports select from sqlalchemy",
                                           "5: calls .delete()", "6: calls .get()", "7: calls .scalars()"]


def test_architecture_doc_names_the_modules_that_exist():
    """docs/architecture.md's file names exist, and its module tables list every module of studio/
    and ui/."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = "ui|studio|storage|rr_core|training|tests|bench|tools"
    named = set(re.findall(rf"`((?:{packages})/[\w/.]*\.(?:py|md))`", doc))
    assert named and sorted(p for p in named if not (ROOT / p).is_file()) == []
    modules = {f"{package}/{p.name}" for package in ("studio", "ui") for p in (ROOT / package).glob("*.py")
               if p.name != "__init__.py"}
    assert sorted(modules - named) == []
