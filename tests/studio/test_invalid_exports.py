"""A critique with an out-of-range or unreadable score is no training data unless asked (issue 18):
a reviewer who accepts its other dimensions, or the invalid one as it stands, does not turn a
written "17" into a supervised target; a correction of every invalid dimension does."""

from __future__ import annotations

import json

import pytest

from storage.export import ExportFilters, export_to_file
from tests.scripted import critique_text
from tests.studio.conftest import ScriptedModels, make_services

SEVENTEEN = critique_text("t2i", 2.5).replace("## Score: 2.5", "## Score: 17", 1)
"""Text faithfulness (the first dimension) written as 17."""


@pytest.fixture
def services(tmp_path):
    built = make_services(tmp_path, ScriptedModels(script=lambda conversation: SEVENTEEN))
    yield built
    built.engine.dispose()


def _reviewed_critique(services, verdicts) -> int:
    view = None
    for view in services.run_loop(None, "a lighthouse", {"rounds": 1}):
        pass
    critique_id = services.next_critique(None)["critique_id"]
    assert view.rounds and services.critique_for_review(None, critique_id)["status"] == "partial"
    services.annotate(None, critique_id, verdicts)
    return critique_id


def _records(services, tmp_path, fmt, **filters) -> list[dict]:
    out = tmp_path / f"{fmt}.jsonl"
    with services.sessions() as db:
        export_to_file(db, services.store, fmt, out, filters=ExportFilters(**filters))
    return [json.loads(line) for line in out.read_text().splitlines()]


ACCEPT_ALL = {key: {"verdict": "accept"} for key in ("text_faithfulness", "physical_quality", "text_rendering")}


@pytest.mark.parametrize("fmt", ["sft", "sft-trl"])
def test_an_accepted_invalid_critique_is_left_out_of_sft(services, tmp_path, fmt):
    _reviewed_critique(services, ACCEPT_ALL)
    assert _records(services, tmp_path, fmt) == []


def test_asked_for_it_is_exported_with_its_raw_value(services, tmp_path):
    critique_id = _reviewed_critique(services, ACCEPT_ALL)
    records = _records(services, tmp_path, "sft", include_invalid=True)
    assert [r["critique_id"] for r in records] == [critique_id]
    assert "Score: 17" in records[0]["messages"][-1]["content"]


def test_correcting_the_invalid_dimension_makes_it_training_data(services, tmp_path):
    verdicts = {**ACCEPT_ALL, "text_faithfulness": {"verdict": "correct", "score": 3.0}}
    critique_id = _reviewed_critique(services, verdicts)
    records = _records(services, tmp_path, "sft")
    assert [r["critique_id"] for r in records] == [critique_id]
    assert "Score: 17" not in records[0]["messages"][-1]["content"]


def test_parrot_rationales_leave_it_out_unless_asked(services, tmp_path):
    view = None
    for view in services.run_loop(None, "a lighthouse", {"rounds": 1, "candidates": 2}):
        pass
    first, second = (c["candidate_id"] for c in view.to_dict()["rounds"][0]["candidates"])
    services.pick_pair(None, first, second, "A")
    for _ in range(2):
        services.annotate(None, services.next_critique(None)["critique_id"], ACCEPT_ALL)
    (record,) = _records(services, tmp_path, "parrot")
    assert record["rationales"] == {"A": [], "B": []}
    (record,) = _records(services, tmp_path, "parrot", include_invalid=True)
    assert [len(record["rationales"][side]) for side in "AB"] == [1, 1]
