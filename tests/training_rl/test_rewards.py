import pytest
from PIL import Image

from rr_core.reward import RewardSpec
from tests.scripted import ScriptedCritic, critique_text
from training.rl.rewards import RewardScorer


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), (40 * i, 40 * i, 40 * i)) for i in range(n)]


def test_failed_and_partial_critiques_are_retried_then_masked_not_zero():
    calls = {"n": 0}

    def script(conversation):
        calls["n"] += 1
        level = conversation.images[-1].getpixel((0, 0))[0] // 40
        if level == 1:
            return "garbage the parser cannot read"
        if level == 2:  # partial: the text is cut before the last dimensions
            return critique_text("t2i", 3.0).split("2. Physical")[0]
        return critique_text("t2i", {"text_faithfulness": 4.0, "physical_quality": 2.0, "text_rendering": "N/A"})

    scorer = RewardScorer(ScriptedCritic(script), RewardSpec(), "t2i", retries=2)
    batch = scorer.score(["a cat"] * 3, _images(3), [None] * 3)
    assert batch.rewards[0] == (1.0 + 1 / 3) / 2  # (4 -> 1.0, 2 -> 1/3), N/A left out
    assert batch.rewards[1] is None and batch.rewards[2] is None
    assert batch.statuses == ["ok", "failed", "partial"]
    assert batch.failure_share == pytest.approx(2 / 3) and batch.attempts == 3
    assert calls["n"] == 3 + 2 + 2  # the two bad ones were asked again twice
    assert batch.dimensions["text_faithfulness"][0] == 4.0
    assert batch.dimension_means() == {"text_faithfulness": 4.0, "physical_quality": 2.0}


def test_reward_spec_weights_are_applied():
    script = lambda c: critique_text("t2i", {"text_faithfulness": 4.0, "physical_quality": 1.0, "text_rendering": 3})
    spec = RewardSpec(dimensions=("text_faithfulness", "physical_quality"), weights=(3.0, 1.0))
    batch = RewardScorer(ScriptedCritic(script), spec, "t2i").score(["x"], _images(1), [None])
    assert batch.rewards == [0.75] and set(batch.dimensions) == {"text_faithfulness", "physical_quality"}


def test_a_critic_that_raises_is_a_failure_not_a_crash():
    class Down:
        def critique_many(self, requests):
            raise ConnectionError("server down")

    batch = RewardScorer(Down(), RewardSpec(), "t2i", retries=1).score(["x", "y"], _images(2), [None, None])
    assert batch.rewards == [None, None] and batch.failure_share == 1.0


@pytest.mark.parametrize("written", ["17", "-3", "99.5", "4.2"])
def test_an_out_of_range_score_is_masked_never_a_reward(written):
    """A critique that wrote a value outside 1-4 is a failure: retried, then masked, never clamped."""
    text = critique_text("t2i", 3.0).replace("## Score: 3.0", f"## Score: {written}", 1)
    scorer = RewardScorer(ScriptedCritic(lambda c: text), RewardSpec(), "t2i", retries=1)
    batch = scorer.score(["a cat"], _images(1), [None])
    assert batch.rewards == [None] and batch.statuses == ["partial"] and batch.attempts == 2
    assert batch.dimensions["text_faithfulness"] == [None]


def _cut_in_refinement(task: str = "t2i") -> str:
    """A critique cut off at max_tokens inside its refinement section: every score is there."""
    text = critique_text(task, {"text_faithfulness": 4.0, "physical_quality": 2.5, "text_rendering": "N/A"})
    return text[: text.index("## Refined Request")]


def test_a_critique_cut_in_its_refinement_counts_by_default():
    """The reference reads only the scores; dropping a critique for a cut refinement biases against long ones."""
    scorer = RewardScorer(ScriptedCritic(lambda c: _cut_in_refinement()), RewardSpec(), "t2i", retries=2)
    batch = scorer.score(["a cat"], _images(1), [None])
    assert batch.statuses == ["partial"] and batch.attempts == 1
    assert batch.rewards == [pytest.approx((1.0 + 0.5) / 2)]  # (4 -> 1.0, 2.5 -> 0.5), N/A left out


def test_complete_mode_still_masks_a_critique_without_its_refined_request():
    scorer = RewardScorer(ScriptedCritic(lambda c: _cut_in_refinement()), RewardSpec(), "t2i", retries=1,
                          accept="complete")
    batch = scorer.score(["a cat"], _images(1), [None])
    assert batch.rewards == [None] and batch.attempts == 2


def test_a_missing_dimension_never_counts_even_when_the_reward_does_not_use_it():
    """'Scores all parsed' means every dimension of the task, not only the rewarded ones."""
    text = critique_text("t2i", 3.0).split("3. Text Rendering")[0]
    spec = RewardSpec(dimensions=("text_faithfulness",))
    batch = RewardScorer(ScriptedCritic(lambda c: text), spec, "t2i", retries=0).score(["x"], _images(1), [None])
    assert batch.rewards == [None]


def test_unknown_accept_mode_is_rejected():
    with pytest.raises(ValueError, match="accept must be one of scores, complete"):
        RewardScorer(ScriptedCritic(lambda c: ""), RewardSpec(), "t2i", accept="any")
