"""tools/rename_names.py on code written in the old style (as another branch may still write it):
the renames it applies, what it keeps, that a second run changes nothing, and that an occurrence it
cannot classify makes it fail instead of guessing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "rename_names.py"

OLD_STORAGE_USER = '''\
from sqlalchemy import select

from storage import repository as repo
from storage.models import Round, StudioSession


def first_requests(db, session_id, user_id):
    rows = list(db.scalars(select(Round).where(Round.session_id == session_id)))
    owned = db.get(StudioSession, session_id)
    row = repo.get_round_for_user(db, rows[0].id, user_id)
    return {"round_id": row.id, "request": row.prompt, "session": owned.prompt,
            "refined": rows[0].refined_prompt, "critic": row.critiques[0].round.id}


def store(db, store, result):
    return repo.record_round(db, store=store, session_id="s", owner_id="u", prompt=result.request,
                             image=result.image, critique=None, round_index=result.index,
                             parent_round_id=None)


def status(result, round_index):
    return f"Round {round_index + 1}: {result.prompt}"
'''

NEW_STORAGE_USER = '''\
from sqlalchemy import select

from storage import repository as repo
from storage.models import CandidateRow, SessionRow


def first_requests(db, session_id, user_id):
    rows = list(db.scalars(select(CandidateRow).where(CandidateRow.session_id == session_id)))
    owned = db.get(SessionRow, session_id)
    row = repo.get_candidate_for_user(db, rows[0].id, user_id)
    return {"candidate_id": row.id, "request": row.request, "session": owned.request,
            "refined": rows[0].refined_request, "critic": row.critiques[0].candidate.id}


def store(db, store, result):
    return repo.record_candidate(db, store=store, session_id="s", owner_id="u", request=result.request,
                             image=result.image, critique=None, round_index=result.index,
                             parent_candidate_id=None)


def status(result, round_index):
    return f"Round {round_index + 1}: {result.prompt}"
'''


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=root, capture_output=True, text=True,
                          check=False)


def test_old_style_code_is_renamed_and_a_second_run_changes_nothing(tmp_path):
    (tmp_path / "studio").mkdir()
    target = tmp_path / "studio" / "new_feature.py"
    target.write_text(OLD_STORAGE_USER)
    presets_user = tmp_path / "studio" / "loader.py"
    presets_user.write_text('from rr_core.presets import Studio\n\n\ndef load(p):\n'
                            '    """Load a RationalRewards Studio preset."""\n    return Studio(p)\n')
    doc = tmp_path / "notes.md"
    doc.write_text("Call `/keep` with `round_id`; a `Round` row belongs to a `StudioSession`.\n")

    first = _run(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert target.read_text() == NEW_STORAGE_USER
    assert presets_user.read_text() == ('from rr_core.presets import Models\n\n\ndef load(p):\n'
                                        '    """Load a RationalRewards Studio preset."""\n    return Models(p)\n')
    assert doc.read_text() == "Call `/keep` with `candidate_id`; a `CandidateRow` row belongs to a `SessionRow`.\n"
    assert "studio/new_feature.py:4: from storage.models import Round, StudioSession -> " in first.stdout

    second = _run(tmp_path)
    assert second.returncode == 0 and "changed 0 file(s)" in second.stdout
    assert _run(tmp_path, "--check").returncode == 0


def test_an_occurrence_it_cannot_classify_fails_the_run(tmp_path):
    (tmp_path / "studio").mkdir()
    source = tmp_path / "studio" / "odd.py"
    source.write_text("from storage.models import Round\n\n\ndef f(thing):\n    return thing.prompt\n")
    loose = tmp_path / "studio" / "loose.py"
    loose.write_text("def g(x):\n    return Round(x)\n")

    result = _run(tmp_path)
    assert result.returncode == 1
    assert "UNCLASSIFIED studio/odd.py:5: `thing.prompt`" in result.stdout
    assert "UNCLASSIFIED studio/loose.py:2: `Round`" in result.stdout
    assert "thing.prompt" in source.read_text()  # never guessed


ROOT = SCRIPT.parents[1]
OLD_PHRASES = re.compile(r"\bround (?:[AB] )?ids?\b|\bround rows?\b|`rounds` row|\bpairs? of rounds\b|"
                         r"\bround_ids?\b", re.I)
"""Prose that still calls a candidate row (or its id) a round: the renames above cover identifiers,
this covers the words around them in docstrings, comments, messages and docs."""
PINNED = ("storage/migrations/versions/", "tools/rename_names.py", "tests/test_rename_names.py",
          "tests/storage/test_storage_migrations.py", "tests/storage/test_migration_names.py")
"""Files that quote the old names on purpose (released migrations, the rename tool and its tests); the
tables of former names in the docs sit between rename_names off/on marks instead."""


def test_the_tree_uses_the_new_names():
    """The tree as it is: the tool finds nothing left to rename, and no prose names a candidate a round
    (outside the pinned table of former names in docs/architecture.md)."""
    check = _run(ROOT, "--check")
    assert check.returncode == 0, check.stdout[-2000:]
    found = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if (path.suffix not in (".py", ".md", ".js") or not path.is_file() or rel.startswith(PINNED)
                or rel.startswith((".", "node_modules/"))):
            continue
        text = re.sub(r"<!-- rename_names: off -->.*?<!-- rename_names: on -->", "",
                      path.read_text(encoding="utf-8"), flags=re.S)
        found += [f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                  for m in OLD_PHRASES.finditer(text)]
    assert found == []
