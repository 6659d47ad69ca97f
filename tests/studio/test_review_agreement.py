"""The agreement figures on hand-checked examples: the per-item share (the export's figure) and
Cohen's kappa per reviewer pair."""

from __future__ import annotations

import pytest

from storage.agreement import majority, reviewer_pairs


def test_majority_share_and_a_level_top():
    assert majority(["A", "A", "B"]) == ("A", pytest.approx(2 / 3))
    assert majority(["A", "B"], level="tie") == ("tie", 0.5)
    assert majority(["accept", "reject"]) == (None, 0.5)
    with pytest.raises(ValueError, match="at least one"):
        majority([])


def test_kappa_per_reviewer_pair_on_shared_items_only():
    labels = {"ann": {1: "A", 2: "A", 3: "B", 4: "B", 9: "A"},
              "bob": {1: "A", 2: "B", 3: "B", 4: "B"},
              "cyd": {7: "A"}}
    (pair,) = reviewer_pairs(labels)
    # observed 3/4; chance 0.5*0.25 + 0.5*0.75 = 0.5; kappa (0.75 - 0.5) / 0.5
    assert (pair.first, pair.second, pair.items, pair.observed) == ("ann", "bob", 4, 0.75)
    assert pair.kappa == pytest.approx(0.5)


def test_kappa_undefined_when_both_give_one_label():
    (pair,) = reviewer_pairs({"ann": {1: "accept", 2: "accept"}, "bob": {1: "accept", 2: "accept"}})
    assert pair.observed == 1.0 and pair.kappa is None
