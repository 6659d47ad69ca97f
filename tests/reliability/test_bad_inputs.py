"""Every bad value a caller can send gets a specific message naming the value, and nothing is
silently coerced: a seed of 1.5 is refused, not run as 1 (issue 18 items 5 and 6). Service level;
tests/reliability/test_web_probes.py sends the same through the launched app."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from rr_core.errors import RRError
from storage.models import SessionRow
from studio.settings import run_settings
from tests.studio.conftest import make_services, raised

BAD_RUN_SETTINGS = [
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": math.inf}, "seed must be a whole number"),
    ({"seed": math.nan}, "seed must be a whole number"),
    ({"seed": 2**63}, "seed must be between 0 and"),
    ({"seed": -1}, "seed must be between 0 and"),
    ({"seed": "7"}, "seed must be a whole number"),
    ({"seed": True}, "seed must be a whole number"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"steps": [4]}, "steps must be a whole number"),
    ({"rounds": 1.2}, "rounds must be a whole number"),
    ({"rounds": 10**30}, "rounds must be between 1 and"),
    ({"candidates": "two"}, "candidates must be a whole number"),
    ({"stop_threshold": "high"}, "stop_threshold must be a number"),
    ({"stop_threshold": math.inf}, "stop_threshold must be a number"),
    ({"fresh_seeds": "yes"}, "fresh_seeds must be true or false"),
    ({"negative_prompt": ["a"]}, "negative_prompt must be text"),
]


@pytest.fixture
def services(tmp_path):
    built = make_services(tmp_path)
    yield built
    built.engine.dispose()


def _message(call) -> str:
    return str(raised(call, RRError))


@pytest.mark.parametrize("settings, message", BAD_RUN_SETTINGS)
def test_bad_run_settings_are_refused_by_name_and_write_nothing(services, settings, message):
    calls = [lambda: services.run_loop(None, "a fox", {"rounds": 1, **settings})]
    if "rounds" not in settings:  # a generation is always one round
        calls.append(lambda: services.generate(None, "a fox", settings))
    for call in calls:
        assert message in _message(call)
    with services.sessions() as db:
        assert list(db.scalars(select(SessionRow))) == []


def test_integral_floats_from_number_boxes_count_as_whole_numbers():
    settings = run_settings({"seed": 3.0, "steps": 2.0, "rounds": 1.0, "candidates": 2, "stop_threshold": 3})
    assert settings == {"seed": 3, "steps": 2, "rounds": 1, "candidates": 2, "stop_threshold": 3.0}
    assert all(type(settings[k]) is int for k in ("seed", "steps", "rounds", "candidates"))


def test_the_last_candidate_seed_still_fits_in_storage():
    with pytest.raises(RRError, match="seed"):
        run_settings({"seed": 2**63 - 1, "candidates": 2})


BAD_IDS = [(2**63, "between 1 and"), (2**64 + 5, "between 1 and"), (1.5, "whole number"),
           (-1, "between 1 and"), ("12", "whole number"), (None, "whole number"), ([1], "whole number")]


@pytest.mark.parametrize("value, message", BAD_IDS)
def test_bad_ids_get_a_specific_message(services, value, message):
    for what, call in (("candidate id", lambda: services.keep(None, value)),
                       ("candidate id", lambda: services.retry_critique(None, value)),
                       ("candidate id", lambda: services.candidate_image(None, value)),
                       ("critique id", lambda: services.annotate(None, value, {"text_faithfulness": {"verdict": "accept"}})),
                       ("candidate id", lambda: services.pick_pair(None, value, 1, "A")),
                       ("candidate id", lambda: services.pick_pair(None, 1, value, "A"))):
        text = _message(call)
        assert what in text and message in text, text


def test_a_pair_of_one_image_is_refused_in_words(services):
    """An A/B pick names two different images; the same id twice is the caller's mistake, said in the
    API's terms (candidate ids), and nothing is stored."""
    view = list(services.run_loop(None, "a fox", {"rounds": 1}))[-1]
    same = view.rounds[0].candidates[0].candidate_id
    text = _message(lambda: services.pick_pair(None, same, same, "A"))
    assert "two different images" in text and "round" not in text
    assert services.pair_progress(None)["everyone"] == 0


@pytest.mark.parametrize("session_id", [["x"], 5, None, {"a": 1}, "x" * 10_000])
def test_bad_session_ids_get_a_specific_message(services, session_id):
    for call in (lambda: services.open_session(None, session_id),
                 lambda: services.delete_session(None, session_id),
                 lambda: services.continue_session(None, session_id)):
        assert "session id" in _message(call)


@pytest.mark.parametrize("verdicts, message", [
    ("accept", "verdicts must be a mapping"),
    (["accept"], "verdicts must be a mapping"),
    ({"text_faithfulness": "accept"}, "verdict of text_faithfulness must be a mapping"),
    ({"text_faithfulness": {"verdict": ["accept"]}}, "verdict of text_faithfulness must be one of"),
    ({"text_faithfulness": {"verdict": "correct", "score": "high"}}, "score of text_faithfulness must be a number"),
    ({"text_faithfulness": {"verdict": "correct", "score": math.inf}}, "score of text_faithfulness must be a number"),
    ({"text_faithfulness": {"verdict": "accept", "comment": 5}}, "comment of text_faithfulness must be text"),
    ({7: {"verdict": "accept"}}, "dimension names must be text"),
])
def test_bad_verdicts_get_a_specific_message(services, verdicts, message):
    list(services.run_loop(None, "a fox", {"rounds": 1}))
    assert message in _message(lambda: services.annotate(None, 1, verdicts))


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "pairs", "parquet": "yes"}, "parquet must be true or false"),
    ({"fmt": "pairs", "parquet": 1}, "parquet must be true or false"),
    ({"fmt": ["pairs"]}, "Unknown export format"),
    ({"fmt": "pairs", "portable": "no"}, "portable must be true or false"),
])
def test_export_flags_are_booleans_not_truthy_values(services, kwargs, message):
    assert message in _message(lambda: services.export(None, **kwargs))
    assert not services.exports_dir.exists() or not any(services.exports_dir.iterdir())


@pytest.mark.parametrize("images", ["yes", "false", 1, 0, None])
def test_the_session_images_flag_is_a_boolean_not_a_truthy_value(services, images):
    view = list(services.run_loop(None, "a fox", {"rounds": 1, "stop_threshold": None}))[-1]
    refused = _message(lambda: services.session_dict(None, view.session_id, images))
    assert "images must be true or false" in refused
    assert services.session_dict(None, view.session_id, False)["session_id"] == view.session_id


@pytest.mark.parametrize("preference", [["A"], {"A": 1}, 1])
def test_bad_preferences_get_a_specific_message(services, preference):
    assert "Pick A, B or tie" in _message(lambda: services.pick_pair(None, 1, 2, preference))


@pytest.mark.parametrize("value, message", BAD_IDS)
def test_review_ids_are_checked_like_every_other_id(services, value, message):
    """Back (review_critique) and Skip once ran int(id): 1.5 opened critique 1, 2**63 overflowed."""
    list(services.run_loop(None, "a fox", {"rounds": 1}))
    for call in (lambda: services.critique_for_review(None, value),
                 lambda: services.skip_critique(None, value),
                 lambda: services.next_critique(None, [value])):
        text = _message(call)
        assert "critique id" in text and message in text, text


@pytest.mark.parametrize("skipped", ["abc", 5, {"pair:1-2": 1}])
def test_skipped_lists_must_be_lists(services, skipped):
    assert "skipped must be a list" in _message(lambda: services.next_critique(None, skipped))
    assert "skipped must be a list" in _message(lambda: services.next_pair(None, skipped))


def test_skipped_pairs_are_pair_keys(services):
    assert "pair key" in _message(lambda: services.next_pair(None, [{"a": 1}]))


@pytest.mark.parametrize("side", [["left"], 1, None])
def test_bad_sides_get_a_specific_message(services, side):
    assert "Pick left, right or tie" in _message(lambda: services.pick_side(None, 1, 2, side))


@pytest.mark.parametrize("call", [
    lambda s: list(s.run_loop(None, "a fox\x00", {"rounds": 1})),
    lambda s: s.generate(None, "a fox", {"negative_prompt": "blur\x00"}),
    lambda s: s.list_sessions(None, "fo\x00x"),
])
def test_a_nul_character_is_refused_by_name(services, call):
    """PostgreSQL cannot store U+0000 in text: it reached the user as a database error."""
    assert "NUL" in _message(lambda: call(services))
    with services.sessions() as db:
        assert list(db.scalars(select(SessionRow))) == []
