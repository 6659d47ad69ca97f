"""A designer cannot tell "no such id" from "someone else's id": every service method that takes an id
answers both with the same error type and text, and the counts a designer sees are their own."""

from __future__ import annotations

import pytest

from studio.users import AuthSettings
from tests.studio.conftest import make_services, raised

AUTH = "alice:pa:designer,bob:pb:designer,carol:pc:annotator"
MISSING_ROUND = 10_000
MISSING_SESSION = "f" * 32


@pytest.fixture
def studio(tmp_path):
    services = make_services(tmp_path, auth=AuthSettings.parse(AUTH))
    view = list(services.run_loop("alice", "a castle on a hill", {"rounds": 1, "candidates": 2}))[-1]
    candidate_ids = [c.candidate_id for r in view.rounds for c in r.candidates]
    yield services, view.session_id, candidate_ids
    services.engine.dispose()


def _same_answer(call_missing, call_others, missing_id, others_id) -> None:
    missing, others = raised(call_missing), raised(call_others)
    assert type(missing) is type(others)
    assert str(missing).replace(str(missing_id), "ID") == str(others).replace(str(others_id), "ID")
    assert "another user" not in str(others) and "belongs" not in str(others)


SESSION_METHODS = {
    "open_session": lambda s, sid: s.open_session("bob", sid),
    "delete_session": lambda s, sid: s.delete_session("bob", sid),
    "continue_session": lambda s, sid: s.continue_session("bob", sid, None, 1),
}
ROUND_METHODS = {
    "retry_critique": lambda s, rid: s.retry_critique("bob", rid),
    "candidate_image": lambda s, rid: s.candidate_image("bob", rid),
    "keep": lambda s, rid: s.keep("bob", rid),
    "pick_pair": lambda s, rid: s.pick_pair("bob", rid, rid + 1, "A"),
    "annotate": lambda s, rid: s.annotate("bob", rid, {"text_faithfulness": {"verdict": "accept"}}),
}


@pytest.mark.parametrize("name", sorted(SESSION_METHODS))
def test_session_ids_answer_the_same_when_missing_or_not_yours(studio, name):
    services, session_id, _ = studio
    call = SESSION_METHODS[name]
    _same_answer(lambda: call(services, MISSING_SESSION), lambda: call(services, session_id),
                 MISSING_SESSION, session_id)


@pytest.mark.parametrize("name", sorted(ROUND_METHODS))
def test_round_ids_answer_the_same_when_missing_or_not_yours(studio, name):
    services, _, candidate_ids = studio
    call = ROUND_METHODS[name]
    _same_answer(lambda: call(services, MISSING_ROUND), lambda: call(services, candidate_ids[0]),
                 MISSING_ROUND, candidate_ids[0])


def test_the_message_does_not_count_rounds(studio):
    services, _, candidate_ids = studio
    text = str(raised(lambda: services.keep("bob", candidate_ids[0])))
    assert text == f"no candidate {candidate_ids[0]}"


def test_an_annotator_reads_every_session_but_a_missing_one_is_not_found(studio):
    services, session_id, _ = studio
    assert services.open_session("carol", session_id).session_id == session_id
    assert "no session" in str(raised(lambda: services.open_session("carol", MISSING_SESSION)))


def test_designers_see_only_their_own_counts(studio):
    services, _, candidate_ids = studio
    item = services.next_critique("carol")
    services.annotate("carol", item["critique_id"], {"text_faithfulness": {"verdict": "accept"}})
    services.pick_pair("carol", candidate_ids[0], candidate_ids[1], "A")
    bob = services.stats("bob")
    assert bob == {"preference_pairs": 0, "annotated_critiques": 0, "my_annotated_critiques": 0, "my_sessions": 0}
    carol = services.stats("carol")
    assert carol["preference_pairs"] == 1 and carol["annotated_critiques"] == 1
    alice = services.stats("alice")
    assert alice["my_sessions"] == 1
    assert alice["preference_pairs"] == 1 and alice["annotated_critiques"] == 1  # judgements on her images
