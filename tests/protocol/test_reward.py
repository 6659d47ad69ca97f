import pytest

from rr_core.critique import Critique, DimensionScore, ParseStatus
from rr_core.parser import parse_critique
from rr_core.reward import UPSTREAM_EDIT_RL, RewardSpec, apply_reward, compute_reward
from rr_core.rubric import Task
from tests import critique_texts as texts


def test_mean_of_valid_scores_mapped_to_unit_interval():
    c = parse_critique(texts.T2I_OK, "t2i")  # 3.5, 3.0, 2.5
    assert compute_reward(c) == pytest.approx((3.0 - 1) / 3)


def test_na_is_left_out_not_zeroed():
    c = parse_critique(texts.EDIT_OK, "edit")  # 3.0, 4.0, 2.5, N/A
    assert compute_reward(c) == pytest.approx(((3.0 + 4.0 + 2.5) / 3 - 1) / 3)


def test_dimension_set_is_a_setting_and_recorded():
    c = parse_critique(texts.EDIT_OK, "edit")
    assert compute_reward(c, UPSTREAM_EDIT_RL) == pytest.approx(((3.0 + 2.5) / 2 - 1) / 3)
    rewarded = apply_reward(c, UPSTREAM_EDIT_RL)
    assert rewarded.reward_dimensions == ("text_faithfulness", "physical_quality", "text_rendering")
    assert apply_reward(c).reward_dimensions == ("text_faithfulness", "image_faithfulness",
                                                 "physical_quality", "text_rendering")


def test_image_faithfulness_is_ignored_for_t2i():
    spec = RewardSpec(dimensions=("text_faithfulness", "image_faithfulness"))
    c = parse_critique(texts.T2I_OK, "t2i")
    assert compute_reward(c, spec) == pytest.approx((3.5 - 1) / 3)


def test_weights():
    spec = RewardSpec(dimensions=("text_faithfulness", "physical_quality"), weights=(3.0, 1.0))
    c = parse_critique(texts.T2I_OK, "t2i")
    assert compute_reward(c, spec) == pytest.approx((3 * (2.5 / 3) + 1 * (2.0 / 3)) / 4)
    with pytest.raises(ValueError):
        RewardSpec(weights=(1.0,))


def test_failed_parse_is_none_never_zero():
    c = parse_critique(texts.GARBAGE, "t2i")
    assert compute_reward(c) is None
    assert apply_reward(c).reward is None


def test_partial_uses_what_parsed_unless_required():
    c = parse_critique(texts.TRUNCATED_LAST_DIMENSION, "t2i")  # 3.5, 3.0, missing
    assert c.status is ParseStatus.PARTIAL
    assert compute_reward(c) == pytest.approx((3.25 - 1) / 3)
    assert compute_reward(c, RewardSpec(require_all=True)) is None


@pytest.mark.parametrize("value", [7.0, 0.0, 4.0000001, -3.0])
def test_a_score_outside_1_to_4_gives_no_reward_never_a_clamped_one(value):
    c = Critique(task=Task.T2I, scores={"text_faithfulness": DimensionScore("text_faithfulness", value),
                                        "physical_quality": DimensionScore("physical_quality", 3.0)})
    assert compute_reward(c) is None


@pytest.mark.parametrize("written", ["17", "-3", "99.5", "4.2", "good"])
def test_an_invalid_dimension_means_no_reward_at_all(written):
    """Not a reward from the other dimensions either: a critic that wrote a wrong value is not trusted."""
    c = parse_critique(texts.T2I_OK.replace("## Score: 3.0", f"## Score: {written}"), "t2i")
    assert c.status is ParseStatus.PARTIAL
    assert compute_reward(c) is None
    assert compute_reward(c, RewardSpec(dimensions=("text_faithfulness",))) is None
    assert apply_reward(c).reward is None


def test_an_invalid_image_faithfulness_blocks_the_upstream_edit_reward_too():
    c = parse_critique(texts.EDIT_OK.replace("## Score: 4.0", "## Score: 17"), "edit")
    assert c.scores["image_faithfulness"].invalid
    assert compute_reward(c, UPSTREAM_EDIT_RL) is None


def test_a_missing_dimension_is_not_an_invalid_one():
    c = parse_critique(texts.TRUNCATED_LAST_DIMENSION, "t2i")
    assert not any(entry.invalid for entry in c.scores.values())
    assert compute_reward(c) is not None


def test_all_na_gives_none():
    c = Critique(task=Task.T2I, scores={"text_rendering": DimensionScore("text_rendering", None, True)})
    assert compute_reward(c, RewardSpec(dimensions=("text_rendering",))) is None


def test_spec_round_trips_and_rejects_unknown_keys():
    spec = RewardSpec(dimensions=("text_faithfulness",), weights=(2.0,), require_all=True)
    assert RewardSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        RewardSpec.from_dict({"dims": ["x"]})
    with pytest.raises(ValueError):
        RewardSpec(dimensions=("colour",)).keys_for(Task.T2I)
