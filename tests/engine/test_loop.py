import threading

import pytest
from PIL import Image

from rr_core.critics.base import CritiqueRequest
from rr_core.critique import ParseStatus
from rr_core.errors import CriticUnavailable, InvalidRequest
from rr_core.loop import (
    CritiqueParsed,
    CritiqueToken,
    ErrorEvent,
    ImageReady,
    LoopConfig,
    LoopDone,
    RefineLoop,
    RoundDone,
    RoundStarted,
)
from rr_core.reward import RewardSpec
from rr_core.rubric import Task
from tests.scripted import PaintGenerator, ScriptedCritic, critique_text, request_of


def run(loop, prompt, config, **kwargs):
    events = list(loop.run(prompt, config, **kwargs))
    assert isinstance(events[-1], LoopDone)
    return events, events[-1].result


def by_round(scores_per_round, task=Task.T2I):
    """A critic whose score depends on how many times it was asked (round r -> scores_per_round[r])."""
    calls = {"n": 0}

    def script(conversation):
        r = min(calls["n"], len(scores_per_round) - 1)
        calls["n"] += 1
        return critique_text(task, scores_per_round[r], refined=f"refined prompt {r + 1}")
    return script


def test_rounds_refine_and_every_image_is_critiqued():
    critic = ScriptedCritic(by_round([2.0, 2.5, 3.0]))
    generator = PaintGenerator()
    events, result = run(RefineLoop(generator, critic, "t2i"), "a fox", LoopConfig(rounds=3, stop_threshold=None))
    assert [r.prompt for r in result.rounds] == ["a fox", "refined prompt 1", "refined prompt 2"]
    assert [req.prompt for req in generator.requests] == ["a fox", "refined prompt 1", "refined prompt 2"]
    assert len(critic.seen) == 3
    # every image was judged against the session's request (refined prompts only drive the generator),
    # so the rewards of different rounds measure the same thing
    assert [request_of(c) for c in critic.seen] == ["a fox"] * 3
    assert [r.request for r in result.rounds] == ["a fox"] * 3
    assert result.reward_history() == pytest.approx([1 / 3, 0.5, 2 / 3])
    assert result.stop_reason == "max_rounds"
    kinds = [type(e) for e in events]
    assert kinds.count(RoundStarted) == 3 and kinds.count(ImageReady) == 3 and kinds.count(RoundDone) == 3


def test_k_candidates_are_critiqued_in_one_batch_and_the_best_is_picked():
    scores = iter([2.0, 3.5, 2.5])
    critic = ScriptedCritic(lambda c: critique_text("t2i", next(scores), refined="from the best"))
    batches = []
    original = critic.complete
    critic.complete = lambda convs: batches.append(len(convs)) or original(convs)
    events, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox",
                         LoopConfig(rounds=1, candidates=3, stop_threshold=None))
    assert batches == [3]
    assert result.rounds[0].pick == 1
    assert result.best_candidate == 1 and result.best_round == 0
    assert [e.candidate_index for e in events if isinstance(e, CritiqueParsed)] == [0, 1, 2]
    assert [c.seed for c in result.rounds[0].candidates] == [0, 1, 2]


def test_keep_best_returns_the_best_round_not_the_last():
    critic = ScriptedCritic(by_round([3.0, 3.8 - 0.3, 2.0]))
    _, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox", LoopConfig(rounds=3, stop_threshold=None))
    assert result.best_round == 1
    assert result.best.critique.reward == pytest.approx((3.5 - 1) / 3)


def test_threshold_stop_rule():
    critic = ScriptedCritic(by_round([2.0, 3.6, 4.0]))
    _, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox", LoopConfig(rounds=5, stop_threshold=3.5))
    assert len(result.rounds) == 2 and result.stop_reason == "threshold"


def test_threshold_counts_na_as_met_and_needs_every_dimension():
    critic = ScriptedCritic(by_round([
        {"text_faithfulness": 4.0, "physical_quality": 3.0, "text_rendering": "N/A"},
        {"text_faithfulness": 4.0, "physical_quality": 3.6, "text_rendering": "N/A"},
    ]))
    _, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox", LoopConfig(rounds=5, stop_threshold=3.5))
    assert len(result.rounds) == 2 and result.stop_reason == "threshold"


def test_upstream_rule_skips_refinement_when_good_enough():
    good = {"text_faithfulness": 3.0, "physical_quality": 3.0, "text_rendering": 1.0}
    _, result = run(RefineLoop(PaintGenerator(), ScriptedCritic(by_round([good])), "t2i"), "a fox",
                    LoopConfig.upstream())
    assert len(result.rounds) == 1 and result.stop_reason == "threshold"
    bad = {"text_faithfulness": 2.9, "physical_quality": 4.0}
    _, result = run(RefineLoop(PaintGenerator(), ScriptedCritic(by_round([bad])), "t2i"), "a fox",
                    LoopConfig.upstream())
    assert len(result.rounds) == 2 and result.stop_reason == "max_rounds"


def test_upstream_rule_refines_once_and_the_refined_image_replaces_the_first():
    # the refined image scores lower than the first: keep-best would answer round 0, upstream answers round 1
    critic = ScriptedCritic(by_round([2.0, 1.5, 3.9]))
    _, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox", LoopConfig.upstream())
    assert len(result.rounds) == 2 and result.stop_reason == "max_rounds"  # one refinement, never a third
    assert (result.best_round, result.best_candidate) == (1, 0)
    assert result.rounds[1].prompt == "refined prompt 1"
    keep_best = LoopConfig(rounds=2, stop_threshold=3.0, stop_dimensions=("text_faithfulness", "physical_quality"))
    _, best = run(RefineLoop(PaintGenerator(), ScriptedCritic(by_round([2.0, 1.5])), "t2i"), "a fox", keep_best)
    assert best.best_round == 0, "the default stays keep-best"


def test_upstream_rule_no_score_of_the_refined_image_decides():
    answers = iter([critique_text("t2i", 2.0, refined="a fox, sharper"), "not a critique at all"])
    _, result = run(RefineLoop(PaintGenerator(), ScriptedCritic(lambda c: next(answers)), "t2i"), "a fox",
                    LoopConfig.upstream(max_retries=0, on_critique_error="skip"))
    assert result.rounds[1].reward is None
    assert (result.best_round, result.best_candidate) == (1, 0)


def test_upstream_rule_cannot_be_bent_by_overrides():
    for clash in ({"rounds": 3}, {"candidates": 2}, {"stop_threshold": 3.5}, {"patience": 1}, {"keep": "best"},
                  {"stop_dimensions": ("text_faithfulness",)}):
        with pytest.raises(InvalidRequest, match="upstream"):
            LoopConfig.upstream(**clash)
    config = LoopConfig.upstream(seed=7, rounds=2)
    assert (config.seed, config.rounds, config.candidates, config.keep) == (7, 2, 1, "last")
    with pytest.raises(InvalidRequest, match="keep"):
        LoopConfig(keep="worst")


def test_patience_stop_rule():
    critic = ScriptedCritic(by_round([3.0, 2.0, 2.5, 3.9]))
    _, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox",
                    LoopConfig(rounds=10, stop_threshold=None, patience=2))
    assert len(result.rounds) == 3 and result.stop_reason == "no_improvement"


def test_fixed_and_fresh_seeds():
    generator = PaintGenerator()
    run(RefineLoop(generator, ScriptedCritic(by_round([2.0])), "t2i"), "a fox",
        LoopConfig(rounds=3, candidates=2, seed=7, stop_threshold=None))
    assert [r.candidate_seeds() for r in generator.requests] == [[7, 8]] * 3
    generator = PaintGenerator()
    run(RefineLoop(generator, ScriptedCritic(by_round([2.0])), "t2i"), "a fox",
        LoopConfig(rounds=3, candidates=2, seed=7, fresh_seeds=True, stop_threshold=None))
    assert [r.candidate_seeds() for r in generator.requests] == [[7, 8], [9, 10], [11, 12]]


def test_caller_overrides_the_refined_prompt():
    generator = PaintGenerator()
    overrides = iter(["my own wording", None])
    run(RefineLoop(generator, ScriptedCritic(by_round([2.0, 2.0, 2.0])), "t2i"), "a fox",
        LoopConfig(rounds=3, stop_threshold=None), next_prompt=lambda result: next(overrides))
    assert [r.prompt for r in generator.requests] == ["a fox", "my own wording", "refined prompt 2"]


def test_cancellation_between_rounds():
    cancel = threading.Event()
    loop = RefineLoop(PaintGenerator(), ScriptedCritic(by_round([2.0])), "t2i")
    events = []
    for event in loop.run("a fox", LoopConfig(rounds=5, stop_threshold=None), cancel=cancel):
        events.append(event)
        if isinstance(event, RoundDone):
            cancel.set()
    assert events[-1].result.stop_reason == "cancelled"
    assert len(events[-1].result.rounds) == 1


def test_cancellation_mid_round_ends_without_a_round():
    cancel = threading.Event()
    loop = RefineLoop(PaintGenerator(), ScriptedCritic(by_round([2.0])), "t2i")
    events = []
    for event in loop.run("a fox", LoopConfig(rounds=5), cancel=cancel):
        events.append(event)
        if isinstance(event, ImageReady):
            cancel.set()
    assert not any(isinstance(e, RoundDone) for e in events)
    assert events[-1].result.stop_reason == "cancelled"


def test_generation_failure_is_retried_as_an_event():
    generator = PaintGenerator(fail_times=1)
    events, result = run(RefineLoop(generator, ScriptedCritic(by_round([2.0])), "t2i"), "a fox",
                         LoopConfig(rounds=1, max_retries=1))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and errors[0].stage == "generate" and errors[0].action == "retry"
    assert "CUDA out of memory" in errors[0].message
    assert result.rounds[0].reward is not None


def test_generation_failure_stop_policy():
    events, result = run(RefineLoop(PaintGenerator(fail_times=5), ScriptedCritic(by_round([2.0])), "t2i"),
                         "a fox", LoopConfig(rounds=3, on_generation_error="stop"))
    assert result.stop_reason == "error" and result.rounds == []
    assert [e.action for e in events if isinstance(e, ErrorEvent)] == ["stop"]


def test_critic_exception_then_skip_keeps_the_loop_going():
    calls = {"n": 0}

    def script(conversation):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise CriticUnavailable("critic at http://127.0.0.1:9 is unreachable")
        return critique_text("t2i", 3.0, refined="better")
    events, result = run(RefineLoop(PaintGenerator(), ScriptedCritic(script), "t2i"), "a fox",
                         LoopConfig(rounds=2, max_retries=1, stop_threshold=None))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.action for e in errors] == ["retry", "skip"]
    assert result.rounds[0].reward is None and result.rounds[0].proposal == "a fox"
    assert result.rounds[1].reward == pytest.approx(2 / 3)
    assert result.best_round == 1


def test_unparseable_critique_is_retried_and_never_scored():
    answers = iter(["I refuse to follow the format.", critique_text("t2i", 3.0)])
    events, result = run(RefineLoop(PaintGenerator(), ScriptedCritic(lambda c: next(answers)), "t2i"), "a fox",
                         LoopConfig(rounds=1, max_retries=1))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and "did not parse" in errors[0].message
    parsed = [e.critique for e in events if isinstance(e, CritiqueParsed)]
    assert parsed[0].status is ParseStatus.FAILED and parsed[0].reward is None
    assert parsed[0].raw_text == "I refuse to follow the format."
    assert result.rounds[0].reward == pytest.approx(2 / 3)


def test_unparseable_after_retries_gives_a_round_without_reward():
    events, result = run(RefineLoop(PaintGenerator(), ScriptedCritic(lambda c: "garbage"), "t2i"), "a fox",
                         LoopConfig(rounds=1, max_retries=2))
    assert result.rounds[0].pick is None and result.rounds[0].reward is None
    assert result.best is None
    assert [e.action for e in events if isinstance(e, ErrorEvent)] == ["retry", "retry", "skip"]


def test_tokens_stream_for_a_single_candidate():
    events, _ = run(RefineLoop(PaintGenerator(), ScriptedCritic(by_round([2.0])), "t2i"), "a fox",
                    LoopConfig(rounds=1))
    tokens = [e.text for e in events if isinstance(e, CritiqueToken)]
    parsed = [e.critique for e in events if isinstance(e, CritiqueParsed)]
    assert len(tokens) > 3 and "".join(tokens) == parsed[0].raw_text


def test_reward_dimensions_are_the_loops_setting():
    spec = RewardSpec(dimensions=("text_faithfulness",))
    critic = ScriptedCritic(by_round([{"text_faithfulness": 4.0, "physical_quality": 1.0}]))
    _, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox", LoopConfig(rounds=1, reward=spec))
    critique = result.rounds[0].picked.critique
    assert critique.reward == 1.0 and critique.reward_dimensions == ("text_faithfulness",)


def test_the_critic_gives_no_reward_and_the_loop_applies_its_spec_once():
    spec = RewardSpec(dimensions=("physical_quality",))
    critic = ScriptedCritic(by_round([{"text_faithfulness": 4.0, "physical_quality": 2.5}]))
    events, result = run(RefineLoop(PaintGenerator(), critic, "t2i"), "a fox",
                         LoopConfig(rounds=1, candidates=2, stop_threshold=None, reward=spec))
    assert critic.critique_many([CritiqueRequest("t2i", "a fox", Image.new("RGB", (8, 8)))])[0].reward is None
    for event in (e for e in events if isinstance(e, CritiqueParsed)):
        assert event.critique.reward == pytest.approx(0.5)
        assert event.critique.reward_dimensions == ("physical_quality",)
    assert result.rounds[0].reward == pytest.approx(0.5)


def test_edit_loop_passes_the_source_image_every_round():
    source = Image.new("RGB", (32, 32), "blue")
    generator = PaintGenerator()
    critic = ScriptedCritic(by_round([2.0, 2.0], task=Task.EDIT))
    _, result = run(RefineLoop(generator, critic, "edit"), "make it red", LoopConfig(rounds=2, stop_threshold=None),
                    source_image=source)
    assert all(r.source_image is source for r in generator.requests)
    assert all(len(c.images) == 2 for c in critic.seen)
    assert set(result.rounds[0].picked.critique.scores) == {"text_faithfulness", "image_faithfulness",
                                                            "physical_quality", "text_rendering"}


def test_bad_inputs():
    loop = RefineLoop(PaintGenerator(), ScriptedCritic(by_round([2.0])), "edit")
    with pytest.raises(InvalidRequest, match="source image"):
        list(loop.run("make it red", LoopConfig()))
    with pytest.raises(InvalidRequest, match="empty"):
        list(loop.run("  ", LoopConfig(), source_image=Image.new("RGB", (8, 8))))
    with pytest.raises(InvalidRequest, match="rounds"):
        LoopConfig(rounds=0)
    with pytest.raises(InvalidRequest, match="Unknown loop setting"):
        LoopConfig.from_dict({"roundz": 3})


def test_config_round_trips_through_a_dict():
    config = LoopConfig(rounds=4, reward=RewardSpec(dimensions=("physical_quality",)), stop_dimensions=("x",))
    again = LoopConfig.from_dict(config.to_dict())
    assert again == config
