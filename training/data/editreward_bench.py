"""EditReward-Bench (configs 2pair, 3pair, 4pair).

Released rows hold one comparison each: id ("<group>_<n>"), dataset, instruction, source_image,
candidate_1, candidate_2, ranking ("A>B", "C>A", "B=C"), comparison_type ("AvsC": candidate_1 is A,
candidate_2 is C), score_1/2, model_1/2; the group and the two positions go into provenance. A row
that instead holds a whole group (candidate_1..candidate_4 and one ranking such as "B>A=C>D", no
comparison_type) is expanded into every pair, ties where the ranking puts two candidates level.
Other column spellings are listed in `_EDITREWARD_COLUMNS`.

Confirmed from the publisher's code, not the card: the card's usage example names source_image,
candidate_1, candidate_2; TIGER-AI-Lab/EditReward evaluate/inference_3pair_hf.py reads id,
instruction, ranking, comparison_type, dataset, score_1/2, model_1/2 and groups rows by the id
prefix; evaluate/inference_4pair_hf.py shows the 4pair rows the same way, one comparison each, with
letters up to D (comparison_type AvsB ... CvsD, rankings such as "D>B"). The whole-group-per-row
layout is an extra this reader accepts, not one seen in a release.

Per-dimension labels: the reference's evaluation (TIGER-AI-Lab/RationalRewards,
reward_model_evaluation/rm_inference/inference_editreward_imgedit.py and modular_rm_eval/scoring.py)
reads numeric instruction_following_1/2 and visual_quality_1/2 of each row and compares them; here
instruction following labels `text_faithfulness` and visual quality labels the `visual_quality`
aspect, which training.evaluate scores as image faithfulness + physical quality, as the reference
does. Assumed (not seen in a release): per-dimension `*_ranking` / `*_preference` columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from rr_core.critique import Preference
from rr_core.rubric import Task
from training.data.base import PairBuilder, parse_label


# Column spellings of EditReward-Bench rows (first present wins). The released parquet files use
# instruction, source_image, candidate_1, candidate_2, ranking (confirmed, see the module docstring).
_EDITREWARD_COLUMNS = {
    "request": ("instruction", "prompt", "instruct_prompt", "edit_instruction"),
    "source": ("source_image", "input_image", "original_image"),
    "a": ("candidate_1", "candidate1", "image_a", "left_image", "edited_image_1", "output_image_1"),
    "b": ("candidate_2", "candidate2", "image_b", "right_image", "edited_image_2", "output_image_2"),
    "label": ("ranking", "preference", "label", "vote_type", "human_preference"),
}
_CANDIDATE_LETTERS = "ABCD"
# Per-dimension labels when a row carries them (column stem -> rubric key or scored aspect).
_EDITREWARD_DIMENSIONS = {"instruction_following": "text_faithfulness", "visual_quality": "visual_quality",
                          "quality_aesthetic": "physical_quality", "consistency": "image_faithfulness"}


def _first(row: dict, names: tuple[str, ...]) -> Any:
    return next((row[n] for n in names if n in row and row[n] is not None), None)


def parse_ranking(text: Any) -> dict[str, int] | None:
    """Tier of each candidate letter in a ranking such as "A>B", "C>A", "B>A=C" (0 is best); None if unreadable."""
    if not isinstance(text, str):
        return None
    tiers = [tier.split("=") for tier in text.replace(" ", "").upper().split(">")]
    ranks = {letter: index for index, tier in enumerate(tiers) for letter in tier}
    letters = [letter for tier in tiers for letter in tier]
    if len(letters) < 2 or len(set(letters)) != len(letters) or not set(letters) <= set(_CANDIDATE_LETTERS):
        return None
    return ranks


def _ranked_label(ranks: dict[str, int] | None, left: str, right: str) -> Preference | None:
    if ranks is None or left not in ranks or right not in ranks:
        return None
    if ranks[left] == ranks[right]:
        return Preference.TIE
    return Preference.A if ranks[left] < ranks[right] else Preference.B


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _editreward_common(row: dict) -> tuple[dict[str, Any], dict[str, Preference]]:
    dims = {}
    for column, key in _EDITREWARD_DIMENSIONS.items():
        value = row.get(f"{column}_ranking", row.get(f"{column}_preference"))
        if value is not None and parse_label(value) is not None:
            dims[key] = parse_label(value)
        first, second = _number(row.get(f"{column}_1")), _number(row.get(f"{column}_2"))
        if first is not None and second is not None:  # candidate_1 is image A
            dims[key] = Preference.TIE if first == second else (Preference.A if first > second else Preference.B)
    provenance = {k: row[k] for k in row if isinstance(row[k], (str, int, float)) and "image" not in k
                  and k not in _EDITREWARD_COLUMNS["request"]}
    return provenance, dims


def read_editreward_bench(builder: PairBuilder, rows: Iterable[dict]) -> None:
    """Pairs of EditReward-Bench rows: one comparison per released row, every pair of a whole-group row."""
    for index, row in enumerate(rows):
        builder.report.rows += 1
        provenance, dims = _editreward_common(row)
        row_id = row.get("id", row.get("pair_id", index))
        request, source = _first(row, _EDITREWARD_COLUMNS["request"]), _first(row, _EDITREWARD_COLUMNS["source"])
        raw = _first(row, _EDITREWARD_COLUMNS["label"])
        candidates = [row.get(f"candidate_{n}") for n in range(1, len(_CANDIDATE_LETTERS) + 1)]
        if candidates[2] is not None and not row.get("comparison_type"):
            # A whole 3- or 4-candidate group in one row: every pair of its ranking, ties where tiers are equal.
            ranks = parse_ranking(raw)
            present = [i for i, c in enumerate(candidates) if c is not None]
            if ranks is None or any(_CANDIDATE_LETTERS[i] not in ranks for i in present):
                builder.report.unknown_labels[str(raw)] += 1
                continue
            for i, j in itertools.combinations(present, 2):
                left, right = _CANDIDATE_LETTERS[i], _CANDIDATE_LETTERS[j]
                builder.add(f"{row_id}:{left}-{right}", Task.EDIT, request, candidates[i], candidates[j],
                            _ranked_label(ranks, left, right), source,
                            {**provenance, "group": str(row_id), "positions": [left, right],
                             "n_candidates": len(present)}, dims)
                if builder.full():
                    return
            continue
        # One comparison per row (the released layout): candidate_1 and candidate_2 are the two letters of
        # comparison_type ("AvsC": A then C) and the ranking names letters ("C>A"); no comparison_type: A vs B.
        comparison = str(row.get("comparison_type") or "AvsB").upper()
        left, _, right = comparison.partition("VS")
        ranks = parse_ranking(raw)
        if ranks is None:
            label = builder.label(raw)  # other spellings: leftvote, tie, a, ...
        else:
            label = _ranked_label(ranks, left, right)
            if label is None:  # a ranking of letters this row does not compare
                builder.report.unknown_labels[str(raw)] += 1
        group = str(row_id).split("_")[0]
        builder.add(row_id, Task.EDIT, request, _first(row, _EDITREWARD_COLUMNS["a"]),
                    _first(row, _EDITREWARD_COLUMNS["b"]), label, source,
                    {**provenance, "group": group, "positions": [left, right]}, dims)
        if builder.full():
            return
