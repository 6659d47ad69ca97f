"""Agreement between reviewers: one figure per item and one per pair of reviewers.

Per item (a critique dimension, or an image pair) the figure is the share of judgements that agree
with the most common label; the export's `--min-agreement` and the Review views both read it from
`majority`, so the two never disagree. Per pair of reviewers it is Cohen's kappa over the items both
judged (scikit-learn's `cohen_kappa_score`), which corrects for the agreement chance alone gives.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


def majority(labels: Sequence[str], level: str | None = None) -> tuple[str | None, float]:
    """(the most common label, the share of `labels` that gives it). When the top labels are level
    there is no majority: the label is `level` (pairs use "tie") and the share is still top / n."""
    if not labels:
        raise ValueError("majority of no labels: an item needs at least one judgement")
    votes = Counter(labels)
    top = max(votes.values())
    leaders = [label for label, count in votes.items() if count == top]
    return (leaders[0] if len(leaders) == 1 else level), top / len(labels)


@dataclass(frozen=True)
class ReviewerPair:
    """How two reviewers agree on the items both judged."""

    first: str
    second: str
    items: int
    observed: float
    kappa: float | None  # None when it is undefined (both gave one and the same label throughout)

    def to_dict(self) -> dict[str, object]:
        return {"first": self.first, "second": self.second, "items": self.items, "observed": self.observed,
                "kappa": self.kappa}


def reviewer_pairs(labels: Mapping[str, Mapping[Hashable, str]]) -> list[ReviewerPair]:
    """Cohen's kappa for every two reviewers with at least one item in common; `labels` maps each
    reviewer to their label per item."""
    from sklearn.metrics import cohen_kappa_score

    pairs = []
    for first, second in itertools.combinations(sorted(labels), 2):
        shared = sorted(set(labels[first]) & set(labels[second]), key=repr)
        if not shared:
            continue
        a = [labels[first][item] for item in shared]
        b = [labels[second][item] for item in shared]
        observed = sum(x == y for x, y in zip(a, b)) / len(shared)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undefined kappa is reported as None below
            kappa = float(cohen_kappa_score(a, b))
        pairs.append(ReviewerPair(first, second, len(shared), observed, None if math.isnan(kappa) else kappa))
    return pairs
