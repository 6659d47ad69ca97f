"""The names-mean-one-thing migration (0006): a database written at the revision before it is read back,
every row kept, under the new names (table `candidates`, `request`, `candidate_id`, ...), and the
downgrade gives the old names back."""

from __future__ import annotations

import importlib.util

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import make_engine, writer_engine
from storage.migrate import MIGRATIONS_DIR, current_revision, downgrade, head_revision, upgrade
from storage.models import CandidateRow, CritiqueRow, PairJudgement, SessionRow

SHA = "b" * 64


def _migration():
    """The migration module, so the test follows its down_revision when revisions are renumbered."""
    path = MIGRATIONS_DIR / "versions" / "0006_names_mean_one_thing.py"
    spec = importlib.util.spec_from_file_location("names_mean_one_thing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_at_previous_revision(connection) -> None:
    """Rows as the app wrote them before the rename: one session, two candidates, a critique, a pick."""
    connection.execute(text("INSERT INTO users (id, display_name, role, created_at) "
                            "VALUES ('u1', 'U', 'designer', '2025-01-01 00:00:00')"))
    connection.execute(text("INSERT INTO sessions (id, owner_id, task, title, prompt, settings, created_at) "
                            "VALUES ('s1', 'u1', 't2i', 'T', 'a red kite', '{}', '2025-01-01 00:00:00')"))
    connection.execute(text("INSERT INTO images (sha256, width, height, format, byte_size, created_at) "
                            f"VALUES ('{SHA}', 4, 4, 'PNG', 10, '2025-01-01 00:00:00')"))
    for row_id, parent in ((1, "NULL"), (2, "1")):
        connection.execute(text(
            "INSERT INTO rounds (id, session_id, round_index, candidate_index, parent_round_id, prompt, "
            "refined_prompt, used_prompt, seed, generator_settings, image_sha256, chosen, created_at) VALUES "
            f"({row_id}, 's1', {row_id - 1}, 0, {parent}, 'a red kite', 'a red kite at dusk', 'kite {row_id}', "
            f"7, '{{}}', '{SHA}', false, '2025-01-01 00:00:00')"))
    connection.execute(text(
        "INSERT INTO critiques (id, round_id, model_id, template_version, raw_text, parsed, status, reward, "
        "reward_dimensions, created_at) VALUES (1, 2, 'm', 'v1', 'raw', '{}', 'ok', 0.5, '[]', "
        "'2025-01-01 00:00:00')"))
    connection.execute(text(
        "INSERT INTO pair_judgements (id, round_a_id, round_b_id, preference, judge_id, source, derived_from, "
        "created_at) VALUES (1, 1, 2, 'B', 'u1', 'human', '', '2025-01-01 00:00:00')"))


def test_rows_written_before_the_rename_read_back_under_the_new_names(database_url):
    migration = _migration()
    assert migration.revision == "0006"
    engine = make_engine(database_url)
    upgrade(engine, migration.down_revision)
    with writer_engine(engine).begin() as connection:
        _write_at_previous_revision(connection)

    upgrade(engine)  # through this migration to head: the models below are head's
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert "candidates" in tables and "rounds" not in tables
    with Session(engine) as db:
        first, second = db.scalars(select(CandidateRow).order_by(CandidateRow.id)).all()
        assert (second.request, second.refined_request, second.used_prompt) == (
            "a red kite", "a red kite at dusk", "kite 2")
        assert second.parent_candidate_id == first.id and second.session.request == "a red kite"
        [critique] = db.scalars(select(CritiqueRow)).all()
        assert critique.candidate_id == second.id and critique.candidate.request == "a red kite"
        [pick] = db.scalars(select(PairJudgement)).all()
        assert (pick.candidate_a_id, pick.candidate_b_id, pick.preference) == (first.id, second.id, "B")
        assert [c.id for c in db.get(SessionRow, "s1").candidates] == [first.id, second.id]
    indexes = {i["name"] for i in inspect(engine).get_indexes("critiques")}
    assert "ix_critiques_candidate_id" in indexes and "ix_critiques_round_id" not in indexes
    with pytest.raises(IntegrityError):  # the CHECK on the renamed columns still refuses a pair of one image
        with writer_engine(engine).begin() as connection:
            connection.execute(text(
                "INSERT INTO pair_judgements (id, candidate_a_id, candidate_b_id, preference, judge_id, source, "
                "derived_from, created_at) VALUES (2, 1, 1, 'A', 'u1', 'human', '', '2025-01-01 00:00:00')"))

    downgrade(engine, migration.down_revision)
    assert current_revision(engine) == migration.down_revision
    with engine.connect() as connection:
        assert connection.execute(text("SELECT prompt, refined_prompt FROM rounds WHERE id = 2")).one() == (
            "a red kite", "a red kite at dusk")
        assert connection.execute(text("SELECT round_id FROM critiques")).scalar_one() == 2
        assert connection.execute(text("SELECT round_a_id, round_b_id FROM pair_judgements")).one() == (1, 2)
        assert connection.execute(text("SELECT prompt FROM sessions")).scalar_one() == "a red kite"
    upgrade(engine)  # through this migration to head: the models below are head's
    assert current_revision(engine) == head_revision()
    engine.dispose()
