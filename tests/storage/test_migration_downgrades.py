"""Downgrading through every revision and back keeps every row: on SQLite, a batch rebuild of a
table used to cascade-delete the rows that point at it (dropping `sessions.hidden_at` deleted every
round), because foreign keys were on while Alembic dropped the old copy."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from PIL import Image
from sqlalchemy import func, select

from rr_core.parser import parse_critique
from storage import repository as repo
from storage.db import make_engine, make_session_factory, write_transaction
from storage.images import ImageStore
from storage.migrate import alembic_config, current_revision, downgrade, head_revision, upgrade
from storage.models import Annotation, CandidateRow, CritiqueRow, PairJudgement, SessionRow
from tests.scripted import critique_text

COUNTED = (SessionRow, CandidateRow, CritiqueRow, Annotation, PairJudgement)


def counts(factory) -> dict[str, int]:
    with factory() as db:
        return {model.__tablename__: db.scalar(select(func.count()).select_from(model)) for model in COUNTED}


def test_every_revision_downgrades_and_upgrades_without_losing_rows(database_url, tmp_path):
    engine = make_engine(database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    store = ImageStore(tmp_path / "images")
    with write_transaction(factory) as db:
        repo.get_or_create_user(db, "ann")
        session_id = repo.create_session(db, owner_id="ann", task="t2i", request="a kite").id
        ids = [repo.record_candidate(db, store=store, session_id=session_id, owner_id="ann", request="a kite",
                                     image=Image.new("RGB", (8, 8), (index * 80, 0, 0)), round_index=index,
                                     critique=parse_critique(critique_text("t2i", 2.5), "t2i")).id
               for index in range(2)]
        critique_id = repo.session_candidates(db, session_id, "ann")[0].critiques[0].id
        repo.add_annotation(db, critique_id=critique_id, annotator_id="ann", dimension="text_faithfulness",
                            verdict="accept")
        repo.add_pair_judgement(db, candidate_a_id=ids[0], candidate_b_id=ids[1], preference="A", judge_id="ann")
    before = counts(factory)
    assert all(before.values()), before

    revisions = [script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    for revision in revisions[1:]:  # newest first; stop at the first revision
        downgrade(engine, revision)
        assert current_revision(engine) == revision
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert counts(factory) == before
    engine.dispose()
