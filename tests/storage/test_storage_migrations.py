"""Alembic migrations: from an empty database and from the previous revision, with data preserved."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from storage.db import make_engine
from storage.migrate import current_revision, head_revision, upgrade, upgrade_to_head
from storage.models import Base, CritiqueRow


def test_upgrade_from_empty_and_from_previous_revision(database_url):
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "constrained" not in {c["name"] for c in inspect(engine).get_columns("critiques")}
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO users (id, display_name, role, created_at) "
                                "VALUES ('u1', 'U', 'designer', '2025-01-01 00:00:00')"))
        connection.execute(text("INSERT INTO sessions (id, owner_id, task, title, prompt, settings, created_at) "
                                "VALUES ('s1', 'u1', 't2i', 'T', 'a cat', '{}', '2025-01-01 00:00:00')"))
        connection.execute(text("INSERT INTO images (sha256, width, height, format, byte_size, created_at) "
                                f"VALUES ('{'a' * 64}', 4, 4, 'PNG', 10, '2025-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO rounds (id, session_id, round_index, candidate_index, prompt, refined_prompt, used_prompt, "
            "seed, generator_settings, image_sha256, chosen, created_at) VALUES "
            f"(1, 's1', 0, 0, 'a cat', 'a tabby cat', 'a cat', 7, '{{}}', '{'a' * 64}', false, '2025-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO critiques (id, round_id, model_id, template_version, raw_text, parsed, status, reward, "
            "reward_dimensions, created_at) VALUES (1, 1, 'm', 'v1', 'raw', '{\"task\": \"t2i\"}', 'ok', 0.5, "
            "'[\"text_faithfulness\"]', '2025-01-01 00:00:00')"))

    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision() == "0008"
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        row = session.get(CritiqueRow, 1)
        assert (row.raw_text, row.status, row.reward, row.constrained) == ("raw", "ok", 0.5, False)
        assert row.parsed == {"task": "t2i"} and row.reward_dimensions == ["text_faithfulness"]
        assert row.candidate.refined_request == "a tabby cat" and row.candidate.session.owner_id == "u1"
        # Rows older than 0003 have no stored critic prompt or reward spec: SQL NULL, not JSON null.
        assert row.prompt_messages is None and row.reward_spec is None
        missing = session.scalar(text("SELECT count(*) FROM critiques WHERE prompt_messages IS NULL "
                                      "AND reward_spec IS NULL"))
        assert missing == 1
    assert "ix_critiques_status_reward" in {i["name"] for i in inspect(engine).get_indexes("critiques")}
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    upgrade_to_head(engine)  # idempotent
    assert current_revision(engine) == head_revision()
    engine.dispose()
