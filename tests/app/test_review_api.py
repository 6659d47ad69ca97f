"""The review endpoints through gradio_client under sign-in: who may call each, that a judgement is
always stored as the caller's (no endpoint takes a judge), leases between two annotators, undo, and
the admin-only disagreement queue."""

from __future__ import annotations

import pytest
from gradio_client import Client
from PIL import Image
from sqlalchemy import select

from storage.models import Annotation, PairJudgement
from studio.users import AuthSettings
from tests.app.conftest import ScriptedModels, launched, make_service

AUTH = "alice:pa:designer,carol:pc:annotator,dave:pd:annotator,erin:pe:admin"
REVIEW_ENDPOINTS = [
    ("/annotation_queue", {}), ("/review_critique", {"critique_id": 1}), ("/skip_critique", {"critique_id": 1}),
    ("/undo_annotation", {}), ("/critique_progress", {}), ("/next_pair", {}),
    ("/pick_side", {"left_candidate": 1, "right_candidate": 2, "side": "left"}),
    ("/skip_pair", {"candidate_a": 1, "candidate_b": 2}), ("/undo_pick", {}), ("/pair_progress", {}),
    ("/agreement", {}), ("/disagreements", {}),
]


@pytest.fixture(scope="module")
def app(module_dir):
    service = make_service(module_dir, ScriptedModels(), auth=AuthSettings.parse(AUTH))
    list(service.run_loop("alice", "make the sky purple", {"rounds": 1, "steps": 1},
                          source_image=Image.new("RGB", (40, 32), (30, 144, 255))))
    list(service.run_loop("alice", "a red fox in the snow", {"rounds": 2, "steps": 1, "stop_threshold": None}))
    with launched(service) as url:
        yield url, service


def client(url: str, name: str) -> Client:
    return Client(url, auth=(name, {"alice": "pa", "carol": "pc", "dave": "pd", "erin": "pe"}[name]), verbose=False)


def rows(service, model):
    with service.sessions() as db:
        return list(db.scalars(select(model).order_by(model.id)))


@pytest.mark.parametrize("api_name, kwargs", REVIEW_ENDPOINTS)
def test_a_designer_cannot_reach_the_review_views(app, api_name, kwargs):
    url, service = app
    with pytest.raises(Exception, match="annotator or admin role"):
        client(url, "alice").predict(api_name=api_name, **kwargs)
    assert rows(service, PairJudgement) == [] and rows(service, Annotation) == []


def test_the_disagreement_queue_is_for_admins(app):
    url, _ = app
    with pytest.raises(Exception, match="for admins"):
        client(url, "carol").predict(api_name="/disagreements")
    assert client(url, "erin").predict(api_name="/disagreements") == []


def test_no_endpoint_lets_an_annotator_judge_as_someone_else(app):
    url, service = app
    carol = client(url, "carol")
    for api_name, kwargs in (("/pick_side", {"left_candidate": 1, "right_candidate": 2, "side": "left", "judge": "dave"}),
                             ("/annotate", {"critique_id": 1, "verdicts": {}, "annotator": "dave"})):
        with pytest.raises(Exception):
            carol.predict(api_name=api_name, **kwargs)
    assert rows(service, PairJudgement) == [] and rows(service, Annotation) == []


def test_two_annotators_get_different_items_and_each_judgement_is_their_own(app):
    url, service = app
    carol, dave = client(url, "carol"), client(url, "dave")
    mine, theirs = carol.predict(api_name="/annotation_queue"), dave.predict(api_name="/annotation_queue")
    assert mine["critique_id"] != theirs["critique_id"]
    assert mine["progress"] == {"mine": 0, "remaining": 3, "everyone": 0, "total": 3}
    key = mine["scores"][0]["key"]
    assert carol.predict(critique_id=mine["critique_id"], verdicts={key: {"verdict": "correct", "score": 2.25}},
                         api_name="/annotate") == "Saved 1 verdict(s)."
    assert [(a.annotator_id, a.critique_id, a.dimension, a.corrected_score) for a in rows(service, Annotation)] == [
        ("carol", mine["critique_id"], key, 2.25)]
    again = carol.predict(critique_id=mine["critique_id"], api_name="/review_critique")
    assert again["mine"] == {key: {"verdict": "correct", "score": 2.25, "comment": ""}}
    assert carol.predict(api_name="/undo_annotation")["critique_id"] == mine["critique_id"]
    assert rows(service, Annotation) == []
    assert carol.predict(api_name="/critique_progress")["mine"] == 0

    pair = carol.predict(api_name="/next_pair")
    assert pair["request"] == "a red fox in the snow" and pair["left"]["label"].startswith("round ")
    assert pair["left"]["image"].startswith("data:image/png;base64,")
    other = dave.predict(api_name="/next_pair")
    assert other == {}  # the only pair is leased to carol
    note = carol.predict(left_candidate=pair["left"]["candidate_id"], right_candidate=pair["right"]["candidate_id"], side="right",
                         api_name="/pick_side")
    assert note == f"Recorded {pair['right']['label']} as better."
    (judged,) = rows(service, PairJudgement)
    assert (judged.judge_id, judged.candidate_a_id, judged.candidate_b_id, judged.preference, judged.left_candidate_id) == (
        "carol", pair["left"]["candidate_id"], pair["right"]["candidate_id"], "B", pair["left"]["candidate_id"])
    assert carol.predict(api_name="/pair_progress") == {"mine": 1, "remaining": 0, "everyone": 1, "total": 1,
                                                        "left_share": 0.0}
    assert dave.predict(api_name="/next_pair")["key"] == pair["key"]  # free again once judged
    assert carol.predict(api_name="/undo_pick")["key"] == pair["key"]
    assert rows(service, PairJudgement) == []
