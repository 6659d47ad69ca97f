"""The app end to end through gradio_client with the tiny preset: create and edit sessions, single
steps, annotation, pair picks and export, each checked against the rows in storage."""

from __future__ import annotations

import io

import pytest
from gradio_client import Client
from PIL import Image
from sqlalchemy import select

from rr_core.images import data_url, decode_data_url
from storage.models import Annotation, CritiqueRow, PairJudgement, CandidateRow, SessionRow
from studio.users import LOCAL_USER
from tests.app.conftest import launched, make_service, tiny_studio

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_client(module_dir):
    service = make_service(module_dir, tiny_studio())
    with launched(service) as url:
        yield Client(url, verbose=False), service


def rows(service, model, *where):
    with service.sessions() as db:
        return list(db.scalars(select(model).where(*where)))


def test_create_three_rounds_then_one_more(app_client):
    client, service = app_client
    result = client.predict(prompt="a red fox in the snow", rounds=3, steps=1, stop_threshold=0,
                            api_name="/run_loop")
    assert result["done"] and result["stop_reason"] == "max_rounds"
    assert [r["round"] for r in result["rounds"]] == [0, 1, 2]
    session = rows(service, SessionRow, SessionRow.id == result["session_id"])[0]
    assert session.owner_id == LOCAL_USER and session.task == "t2i" and session.request == "a red fox in the snow"
    stored = rows(service, CandidateRow, CandidateRow.session_id == session.id)
    assert sorted(r.round_index for r in stored) == [0, 1, 2]
    assert stored[0].request == "a red fox in the snow"
    for api_round, row in zip(result["rounds"], sorted(stored, key=lambda r: r.round_index)):
        candidate = api_round["candidates"][0]
        # the generator's prompt of the round, and the request its images were judged against
        assert candidate["candidate_id"] == row.id and row.used_prompt == api_round["prompt"]
        assert row.request == "a red fox in the snow"
        assert service.store.exists(row.image_sha256)
        assert decode_data_url(candidate["image"]).size == service.store.open(row.image_sha256).size
        critique = rows(service, CritiqueRow, CritiqueRow.candidate_id == row.id)
        # the tiny critic decodes under the critique grammar, so every critique parses in full
        assert len(critique) == 1 and critique[0].status == candidate["critique"]["status"] == "ok"
        assert critique[0].raw_text == candidate["critique"]["raw_text"]
        assert critique[0].reward == candidate["reward"] is not None

    more = client.predict(session_id=session.id, prompt="a red fox, golden light", api_name="/refine_round")
    assert len(more["rounds"]) == 4 and more["rounds"][3]["prompt"] == "a red fox, golden light"
    fourth = rows(service, CandidateRow, CandidateRow.session_id == session.id, CandidateRow.round_index == 3)
    assert len(fourth) == 1 and fourth[0].used_prompt == "a red fox, golden light"
    assert fourth[0].request == "a red fox in the snow"  # continued rounds are judged against the same request


def test_edit_session(app_client):
    client, service = app_client
    source = Image.new("RGB", (48, 40), (20, 120, 200))
    result = client.predict(prompt="make the sky purple", rounds=2, steps=1, stop_threshold=0,
                            source_image=data_url(source), api_name="/run_loop")
    assert result["task"] == "edit" and len(result["rounds"]) == 2
    stored = rows(service, CandidateRow, CandidateRow.session_id == result["session_id"])
    assert len(stored) == 2 and all(r.source_image_sha256 for r in stored)
    assert service.store.open(stored[0].source_image_sha256).size == (48, 40)
    critiques = rows(service, CritiqueRow, CritiqueRow.candidate_id.in_([r.id for r in stored]))
    assert len(critiques) == 2 and all(c.parsed["task"] == "edit" and c.status == "ok" for c in critiques)


def test_single_steps_generate_and_critique(app_client):
    client, service = app_client
    generated = client.predict(prompt="a blue cube", steps=1, candidates=2, api_name="/generate")
    candidates = generated["rounds"][0]["candidates"]
    assert len(candidates) == 2 and all(c["critique"] is None for c in candidates)
    assert len(rows(service, CandidateRow, CandidateRow.session_id == generated["session_id"])) == 2
    image = candidates[0]["image"]
    judged = client.predict(prompt="a blue cube", image=image, api_name="/critique")
    critique = judged["rounds"][0]["candidates"][0]["critique"]
    assert critique["status"] == "ok" and critique["raw_text"] and critique["reward"] is not None
    stored = rows(service, CandidateRow, CandidateRow.session_id == judged["session_id"])
    assert len(stored) == 1 and len(rows(service, CritiqueRow, CritiqueRow.candidate_id == stored[0].id)) == 1


def test_annotate_pick_and_export(app_client):
    client, service = app_client
    if not rows(service, CandidateRow):
        client.predict(prompt="a teapot", rounds=2, steps=1, stop_threshold=0, api_name="/run_loop")
    item = client.predict(api_name="/annotation_queue")
    keys = [row["key"] for row in item["scores"]]
    verdicts = {keys[0]: {"verdict": "accept"}, keys[1]: {"verdict": "correct", "score": 2.0, "comment": "too high"}}
    assert "Saved 2" in client.predict(critique_id=item["critique_id"], verdicts=verdicts, api_name="/annotate")
    saved = rows(service, Annotation, Annotation.critique_id == item["critique_id"])
    assert {(a.dimension, a.verdict.value, a.corrected_score) for a in saved} == {
        (keys[0], "accept", None), (keys[1], "correct", 2.0)}
    assert client.predict(api_name="/annotation_queue").get("critique_id") != item["critique_id"]

    pair = client.predict(api_name="/next_pair")
    client.predict(candidate_a=pair["candidate_a"], candidate_b=pair["candidate_b"], preference="B", api_name="/pick_pair")
    judged = rows(service, PairJudgement, PairJudgement.candidate_a_id == pair["candidate_a"])
    assert [(j.candidate_b_id, j.preference, j.judge_id) for j in judged] == [(pair["candidate_b"], "B", LOCAL_USER)]
    stats = client.predict(api_name="/stats")
    assert stats["preference_pairs"] >= 1 and stats["annotated_critiques"] >= 1

    exported = client.predict(format="pairs", api_name="/export")
    assert exported["count"] >= 1 and "python -m storage.export --format pairs" in exported["command"]
    with open(exported["file"], encoding="utf-8") as handle:
        assert len(handle.read().splitlines()) == exported["count"]


def test_sessions_search_open_delete(app_client):
    client, service = app_client
    made = client.predict(prompt="a lighthouse at night", rounds=1, steps=1, api_name="/run_loop")
    found = client.predict(search="lighthouse", api_name="/sessions")
    assert [s["id"] for s in found] == [made["session_id"]]
    opened = client.predict(session_id=made["session_id"], api_name="/session")
    assert opened["request"] == "a lighthouse at night" and len(opened["rounds"]) == 1
    client.predict(session_id=made["session_id"], api_name="/delete_session")
    assert rows(service, SessionRow, SessionRow.id == made["session_id"]) == []
    assert client.predict(search="lighthouse", api_name="/sessions") == []


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": ""}, "The request is empty"),
    ({"prompt": "x" * 2001}, "characters long; the limit is 2000"),
    ({"prompt": "edit it", "source_image": "data:image/png;base64," + "QUJD" * 400}, "not a readable image"),
    ({"prompt": "edit it", "source_image": "not an image"}, "must be a data URL"),
])
def test_bad_input_messages(app_client, kwargs, message):
    client, _ = app_client
    with pytest.raises(Exception, match=message):
        client.predict(rounds=1, steps=1, api_name="/run_loop", **kwargs)


def test_corrupt_and_oversized_uploads(app_client):
    client, _ = app_client
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
    truncated = "data:image/png;base64," + __import__("base64").b64encode(buffer.getvalue()[:80]).decode()
    with pytest.raises(Exception, match="corrupt or truncated|not a readable image"):
        client.predict(prompt="judge it", image=truncated, api_name="/critique")
    huge = "data:image/png;base64," + __import__("base64").b64encode(b"\x89PNG" + b"0" * (21 * 2**20)).decode()
    with pytest.raises(Exception, match="the limit is 20 MB"):
        client.predict(prompt="judge it", image=huge, api_name="/critique")
    # The app is still usable after the errors.
    assert client.predict(api_name="/health")
