import pytest
import torch
from PIL import Image

from training.rl.advantages import compute_advantages, global_reward_std, group_key, image_hash


def test_group_statistics_by_hand():
    keys = [("p", "")] * 4 + [("q", "")] * 2
    adv = compute_advantages([0.0, 0.5, 1.0, 0.5, 0.2, 0.6], keys, "group", clip=5.0)
    std = (((0 - 0.5) ** 2 + 0 + 0.25 + 0) / 4) ** 0.5  # population std of the first group
    expected = [-0.5 / std, 0.0, 0.5 / std, 0.0, -1.0, 1.0]
    assert adv.values.tolist() == pytest.approx(expected, rel=1e-3)
    assert adv.used.all() and adv.filtered_groups == 0


def test_global_std_and_clipping():
    rewards = [0.0, 1.0, 0.4, 0.6]
    keys = [("a", "")] * 2 + [("b", "")] * 2
    adv = compute_advantages(rewards, keys, "global", clip=0.8)
    global_std = float(torch.tensor(rewards, dtype=torch.float64).std(unbiased=False))
    assert adv.values.tolist() == pytest.approx([-0.8, 0.8, -0.1 / global_std, 0.1 / global_std], rel=1e-3)


def test_same_prompt_on_two_sources_is_two_groups():
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    keys = [group_key("make it night", red)] * 2 + [group_key("make it night", blue)] * 2
    adv = compute_advantages([0.2, 0.4, 0.6, 0.8], keys, "group")
    # Each source is normalized against itself: both groups give -1, +1 (by prompt text alone: -1.2, -0.6, ...).
    assert adv.values.tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0], rel=1e-3)
    assert image_hash(red) == image_hash(Image.new("RGB", (8, 8), "red")) != image_hash(blue)


def test_zero_std_groups_and_masked_rewards_are_filtered():
    keys = [("p", "")] * 3 + [("q", "")] * 3 + [("r", "")] * 2
    adv = compute_advantages([0.5, 0.5, 0.5, 0.1, None, 0.3, None, 0.9], keys, "group")
    assert adv.used.tolist() == [False] * 3 + [True, False, True] + [False, False]
    assert adv.values.tolist() == pytest.approx([0, 0, 0, -1.0, 0, 1.0, 0, 0], abs=1e-3)
    assert adv.filtered_groups == 2 and adv.groups == 3


def test_global_std_spans_every_process():
    """With two processes, "global" means the std of both processes' rewards, failures left out."""
    other_process = torch.tensor([0.0, float("nan"), 1.0, 1.0], dtype=torch.float64)
    mine = [0.5, 0.5, None, 0.0]
    std = global_reward_std(mine, lambda local: torch.cat([local, other_process]))
    expected = torch.tensor([0.5, 0.5, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64).std(unbiased=False)
    assert std == pytest.approx(float(expected))
    keys = [("p", "")] * 4
    adv = compute_advantages(mine, keys, "global", clip=10.0, global_std=std)
    group = torch.tensor([0.5, 0.5, 0.0])
    assert adv.values[[0, 1, 3]].tolist() == pytest.approx(((group - group.mean()) / std).tolist(), rel=1e-3)


def test_global_std_is_the_default_as_the_reference():
    """(reward - group mean) / (std of every valid reward of the step + 1e-4), the reference's formula."""
    rewards = [0.1, 0.3, 0.5, 0.8]
    keys = [("a", "")] * 2 + [("b", "")] * 2
    adv = compute_advantages(rewards, keys)
    std = float(torch.tensor(rewards, dtype=torch.float64).std(unbiased=False)) + 1e-4
    assert adv.values.tolist() == pytest.approx([-0.1 / std, 0.1 / std, -0.15 / std, 0.15 / std], rel=1e-5)
    assert adv.used.all()


def test_groups_are_masked_by_the_reference_thresholds():
    """Masked: normaliser (std + 1e-4) <= 0.05, or group mean >= 0.9; the rest keep their advantages."""
    keys = [("solved", "")] * 2 + [("flat", "")] * 2 + [("open", "")] * 2
    rewards = [0.98, 0.88, 0.4, 0.4, 0.1, 0.6]
    adv = compute_advantages(rewards, keys, "group")
    assert adv.used.tolist() == [False, False, False, False, True, True]
    assert adv.filtered_groups == 2
    # With the global std the flat group is kept (its advantages are 0), as in the reference.
    adv = compute_advantages(rewards, keys, "global")
    assert adv.used.tolist() == [False, False, True, True, True, True]
    # A step whose rewards barely differ is masked as a whole under the global std.
    adv = compute_advantages([0.50, 0.52, 0.30, 0.31], [("a", "")] * 2 + [("b", "")] * 2, "global",
                             min_std=0.2)
    assert not adv.used.any()
    # max_mean None turns the mean rule off.
    adv = compute_advantages(rewards, keys, "group", max_mean=None)
    assert adv.used.tolist() == [True, True, False, False, True, True]
