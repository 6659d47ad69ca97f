"""One model of a run: a stored session read back equals the live run that wrote it, and a reopened
session continues exactly as the live one would."""

from __future__ import annotations

from sqlalchemy import func, select

from rr_core.limits import MAX_REQUEST_CHARS
from rr_core.reward import RewardSpec
from storage.models import CritiqueRow, CandidateRow
from tests.scripted import critique_text, request_of
from tests.studio.conftest import task_of


def varied(conversation):
    """Scores that differ per image (so picks are not always candidate 0); some critiques fail."""
    red = conversation.images[-1].getpixel((0, 0))[0]
    if red % 5 == 0:
        return "I cannot judge this image."
    return critique_text(task_of(conversation), 1.0 + (red % 7) / 2.5, refined=f"{request_of(conversation)} r{red}")


def test_a_reopened_session_equals_the_live_run(services, models):
    models.script = varied
    views = list(services.run_loop(None, "a red bicycle", {"rounds": 3, "candidates": 3, "stop_threshold": None}))
    live = views[-1]
    assert live.done and len(live.run.state.rounds) == 3
    picks = [r.pick for r in live.run.state.rounds]
    assert any(p not in (None, 0) for p in picks), f"the script should make some picks differ: {picks}"

    reopened = services.open_session(None, live.session_id)
    assert reopened.run.summary() == live.run.summary()
    assert reopened.best == live.best and reopened.next_prompt == live.next_prompt
    strip = ("status", "live_text", "messages", "stop_reason")  # how a run ended is not stored
    assert ({k: v for k, v in reopened.to_dict().items() if k not in strip}
            == {k: v for k, v in live.to_dict().items() if k not in strip})
    with services.sessions() as db:
        stored = dict(db.execute(select(CandidateRow.id, CandidateRow.session_id)).all())
    ids = [c.candidate_id for r in live.rounds for c in r.candidates]
    assert None not in ids and sorted(ids) == sorted(stored)


def test_an_over_long_proposal_reloaded_still_lets_one_more_round_run(services, models):
    too_long = "a very detailed bicycle " * (MAX_REQUEST_CHARS // 20)
    assert len(too_long) > MAX_REQUEST_CHARS
    models.script = lambda conversation: critique_text(task_of(conversation), 2.0, refined=too_long)
    live = list(services.run_loop(None, "a bicycle", {"rounds": 1}))[-1]
    assert live.next_prompt == "a bicycle"  # the loop refuses the over-long proposal

    reopened = services.open_session(None, live.session_id)
    assert reopened.next_prompt == live.next_prompt == reopened.rounds[0].proposal
    more = list(services.continue_session(None, live.session_id))[-1]
    assert more.done and more.stop_reason == "max_rounds" and len(more.rounds) == 2
    assert more.rounds[1].prompt == "a bicycle"
    with services.sessions() as db:
        assert db.scalar(select(func.count(func.distinct(CandidateRow.round_index)))) == 2


def test_continuing_a_reopened_session_keeps_ids_and_best(services):
    first = list(services.run_loop(None, "a lighthouse", {"rounds": 1, "candidates": 2}))[-1]
    more = list(services.continue_session(None, first.session_id))[-1]
    assert [c.candidate_id for c in more.rounds[0].candidates] == [c.candidate_id for c in first.rounds[0].candidates]
    assert more.rounds[1].prompt == "a lighthouse refined"
    assert services.open_session(None, first.session_id).run.summary() == more.run.summary()


def test_every_stored_critique_keeps_its_prompt_and_reward_spec(services):
    list(services.run_loop(None, "a teapot", {"rounds": 1, "reward": {"dimensions": ["text_faithfulness"]}}))
    with services.sessions() as db:
        row = db.scalars(select(CritiqueRow)).one()
    assert RewardSpec.from_dict(row.reward_spec) == RewardSpec(dimensions=("text_faithfulness",))
    assert [m["role"] for m in row.prompt_messages] == ["system", "user"]
    assert "a teapot" in row.prompt_messages[1]["content"] and "<image>" in row.prompt_messages[1]["content"]


def test_a_reopened_edit_session_equals_the_live_run_and_keeps_its_source(services, models):
    from PIL import Image

    models.script = varied
    source = Image.new("RGB", (40, 32), (200, 30, 90))
    live = list(services.run_loop(None, "make it blue", {"rounds": 2, "candidates": 2, "stop_threshold": None},
                                  source))[-1]
    reopened = services.open_session(None, live.session_id)
    assert reopened.task == "edit" and reopened.run.summary() == live.run.summary()
    assert list(reopened.source_image.getdata()) == list(source.getdata())


def test_a_round_whose_generation_failed_keeps_its_place_when_reopened(services, models):
    models.generator_double.fail_times = 1  # round 1 fails and is skipped; round 2 runs
    live = list(services.run_loop(None, "a windmill", {"rounds": 2, "stop_threshold": None}))[-1]
    assert [r.skipped for r in live.run.state.rounds] == [True, False]
    assert any("generate failed" in m for m in live.messages)
    reopened = services.open_session(None, live.session_id)
    assert reopened.run.summary() == live.run.summary()


def test_a_last_round_whose_generation_failed_is_kept_when_reopened(services, models):
    """Nothing is stored for a round that made no image; the session remembers it was run, so the
    reopened run has the same rounds as the live one and one more round gets the same number."""
    models.generator_double.fail_from_call = 2  # round 1 runs; round 2 fails (with its retries)
    live = list(services.run_loop(None, "a lighthouse", {"rounds": 2, "stop_threshold": None}))[-1]
    assert [r.skipped for r in live.run.state.rounds] == [False, True]
    reopened = services.open_session(None, live.session_id)
    assert [r.skipped for r in reopened.run.state.rounds] == [False, True]
    assert reopened.run.summary() == live.run.summary()
    models.generator_double.fail_from_call = None
    more = list(services.continue_session(None, live.session_id, rounds=1))[-1]
    assert [r.index for r in more.run.state.rounds] == [0, 1, 2]
