"""Shared helpers: real-format pairwise rationales and scripted teachers/judges for PARROT tests."""

from __future__ import annotations

import re

from rr_core.critique import PairDimension, PairwiseCritique, Preference
from rr_core.critique_format import render_pairwise_critique
from rr_core.prompts import Conversation
from rr_core.rubric import Task, dimensions

WHO = {Preference.A: "Image A matches the request", Preference.B: "Image B matches the request",
       Preference.TIE: "Both images match the request"}


def pair_text(task: Task | str, winner: Preference, extra: str = "", summary_extra: str = "") -> str:
    """A well-formed pairwise rationale whose summed scores favour `winner` (equal sums for a tie)."""
    task = Task.parse(task)
    high, low = 3.75, 2.0
    dims = {}
    for index, dim in enumerate(dimensions(task)):
        if dim.na_allowed:
            dims[dim.key] = PairDimension(dim.key, None, None, True, True, Preference.TIE, "No text requested.")
        elif index == 0 and winner is not Preference.TIE:
            a, b = (high, low) if winner is Preference.A else (low, high)
            dims[dim.key] = PairDimension(dim.key, a, b, winner=winner,
                                          justification=f"{WHO[winner]}: the count and colour are right. {extra}".strip())
        else:
            dims[dim.key] = PairDimension(dim.key, 3.5, 3.5, winner=Preference.TIE,
                                          justification=f"Both are clean drawings. {WHO[winner]}.")
    return render_pairwise_critique(PairwiseCritique(task=task, dims=dims,
                                                     summary=f"{WHO[winner]}. {summary_extra}".strip()))


def anchored_label(conversation: Conversation) -> Preference:
    """The preference a phase-1 prompt announces (from the shipped template's preference words)."""
    text = conversation.user_text
    if "Image A is better" in text:
        return Preference.A
    if "Image B is better" in text:
        return Preference.B
    assert "equally good" in text, "not an anchored prompt"
    return Preference.TIE


def judge_reading(conversation: Conversation) -> Preference:
    """A scripted judge: believes whatever the observations it was shown say matches the request."""
    observed = conversation.user_text.split("Another evaluator wrote", 1)[1]
    found = re.search(r"(Image A|Image B|Both images) match", observed)
    return {"Image A": Preference.A, "Image B": Preference.B, "Both images": Preference.TIE}[found.group(1)]


def write_sft_dataset(root) -> str:
    """An 8-sample pairwise SFT file (synthetic pairs, one real-format rationale) for distillation tests."""
    from tests.critique_texts import PAIRWISE_T2I
    from training.data import DataSource, read_pairs
    from training.parrot.sft_data import build_sft_dataset
    from training.parrot.synthetic import write_synthetic_pairs

    path = write_synthetic_pairs(root / "data", n_pairs=8, tie_every=0)
    pairs, _ = read_pairs(DataSource("storage", str(path)))
    build_sft_dataset([{"pair_id": p.pair_id, "text": PAIRWISE_T2I} for p in pairs], pairs, root / "sft.jsonl")
    return str(root / "sft.jsonl")
