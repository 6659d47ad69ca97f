"""Export from the app, and the rule for critiques stored before their critic prompt was kept."""

from __future__ import annotations

import json
import logging

from PIL import Image

from rr_core.parser import parse_critique
from storage import repository as repo
from storage.db import write_transaction
from storage.export import export_to_file
from studio.users import LOCAL_USER
from tests.scripted import critique_text


def _old_critique(services) -> int:
    """A reviewed critique written the way rows were before revision 0003 (no prompt, no reward spec)."""
    services.user(None)
    with write_transaction(services.sessions) as db:
        session_id = repo.create_session(db, owner_id=LOCAL_USER, task="t2i", request="an old lighthouse").id
        critique = parse_critique(critique_text("t2i", 3.0), "t2i")
        row = repo.record_candidate(db, store=services.store, session_id=session_id, owner_id=LOCAL_USER,
                                request="an old lighthouse", image=Image.new("RGB", (16, 16), (9, 9, 9)),
                                critique=critique, round_index=0)
        critique_id = row.critiques[0].id
        repo.add_annotation(db, critique_id=critique_id, annotator_id=LOCAL_USER, dimension="text_faithfulness",
                            verdict="accept")
    return critique_id


def test_an_old_critique_is_left_out_of_sft_until_the_app_fills_its_prompt(services, tmp_path, caplog):
    critique_id = _old_critique(services)
    out = tmp_path / "sft.jsonl"
    with caplog.at_level(logging.WARNING, logger="storage.export"), services.sessions() as db:
        assert export_to_file(db, services.store, "sft", out) == 0
    assert "1 reviewed critique(s) left out" in caplog.text

    assert services.exports.backfill() == 1
    assert services.exports.backfill() == 0  # nothing left to fill
    with services.sessions() as db:
        assert export_to_file(db, services.store, "sft", out) == 1
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["critique_id"] == critique_id and "an old lighthouse" in record["messages"][1]["content"]


def test_export_from_the_app_names_the_command_line_that_does_the_same(services):
    list(services.run_loop(None, "a kite", {"rounds": 1}))
    result = services.export(None, "rl-prompts")
    assert result["count"] == 1 and result["file"].endswith(".jsonl")
    assert result["command"].startswith("python -m storage.export --format rl-prompts --out rl-prompts-")
    assert "--database-url" in result["command"] and str(services.store.root) in result["command"]


def test_backfill_pages_past_critiques_it_cannot_fill(services, monkeypatch):
    from studio import codec

    first, second = _old_critique(services), _old_critique(services)
    rendered = codec.critic_messages
    monkeypatch.setattr(codec, "critic_messages", lambda *args: None)  # e.g. a request over today's limit
    assert services.exports.backfill() == 0
    monkeypatch.setattr(codec, "critic_messages", rendered)
    with services.sessions() as db:
        assert codec.backfill_critic_prompts(db, services.store, after_id=first, limit=1) == (1, second)


def test_a_download_link_outlives_a_restart_of_the_app(tmp_path):
    """Links are kept in the database: after a restart (or on another worker) the same link serves
    the same file, and a link whose file retention removed says to export again."""
    import pytest

    from storage.errors import NotFound
    from tests.studio.conftest import make_services

    first = make_services(tmp_path)
    list(first.run_loop(None, "a kite", {"rounds": 1}))
    result = first.export(None, "pairs", portable=True)
    token = result["download"].rsplit("/", 1)[-1]
    first.engine.dispose()

    restarted = make_services(tmp_path)
    assert restarted.download(None, token) == tmp_path / "exports" / result["zip"].rsplit("/", 1)[-1]
    with pytest.raises(NotFound, match="export again"):
        restarted.download(None, token[:-1] + ("A" if token[-1] != "A" else "B"))
    (tmp_path / "exports" / result["zip"].rsplit("/", 1)[-1]).unlink()
    with pytest.raises(NotFound, match="export again"):
        restarted.download(None, token)
    restarted.engine.dispose()


def test_the_database_holds_a_hash_of_the_link_not_the_link(services):
    """Whoever reads the database (a backup, a replica) cannot use the links in it."""
    from sqlalchemy import text

    result = services.export(None, "rl-prompts")
    token = result["download"].rsplit("/", 1)[-1]
    with services.sessions() as db:
        stored = db.execute(text("SELECT token_hash, file_name FROM export_links")).all()
    assert len(stored) == 1 and token not in stored[0].token_hash
    assert stored[0].file_name == result["file"].rsplit("/", 1)[-1]
