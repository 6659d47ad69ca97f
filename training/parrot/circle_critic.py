"""A rule-based critic for the synthetic circle set (training.parrot.synthetic): it reads the request
("three red circles") from the prompt, counts the circles of every colour in each image, and writes a
real-format pairwise critique (or, for a pointwise prompt, a pointwise critique with a refined
request) whose scores follow what it counted.

Why it exists: the offline smoke run needs a teacher and a judge that are right about their images,
or the consistency filter keeps nothing and distillation has no data (a random-weight model's
rationales, even grammar-constrained, agree with the label only by chance). It is a real critic of
that one drawn domain, not a test double: it looks at the pixels and never at the label, so the
anchored prompt's verdict and the judge's observations do not change what it writes. Any other
request is an error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from rr_core.critics.base import Critic, Generation
from rr_core.critique import Critique, DimensionScore, PairDimension, PairwiseCritique, ParseStatus, Preference
from rr_core.critique_format import render_critique, render_pairwise_critique
from rr_core.prompts import Conversation
from rr_core.rubric import Task, dimensions
from training.parrot.synthetic import COLOURS, NUMBERS, draw_circles

MODEL_ID = "rule-based/circle-counter"
_WORDS = {word: count for count, word in NUMBERS.items()}
_REQUEST = re.compile(r"\b(" + "|".join(_WORDS) + r") (" + "|".join(COLOURS) + r") circles?\b")
MIN_CIRCLE_PIXELS = 12  # smaller blobs of a colour are drawing noise, not circles


def parse_circle_request(text: str) -> tuple[int, str]:
    """(count, colour) of the first synthetic request in `text`; ValueError when there is none."""
    found = _REQUEST.search(text)
    if not found:
        raise ValueError("the circle counter only judges synthetic requests such as 'three red circles'")
    return _WORDS[found.group(1)], found.group(2)


def _components(mask: np.ndarray) -> list[int]:
    """Pixel counts of the 4-connected regions of a boolean mask (height x width)."""
    seen = np.zeros_like(mask)
    sizes = []
    height, width = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        seen[y, x] = True
        stack, size = [(y, x)], 0
        while stack:
            cy, cx = stack.pop()
            size += 1
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        sizes.append(size)
    return sizes


def _circle_area(size: int) -> int:
    """Pixels of one circle as training.parrot.synthetic draws it on a `size`-pixel canvas."""
    pixels = np.asarray(draw_circles(1, "red", size=size), dtype=np.int16)
    return int((np.abs(pixels - np.array(COLOURS["red"], dtype=np.int16)).sum(axis=-1) <= 30).sum())


def count_circles(image: Image.Image) -> dict[str, int]:
    """How many circles of each synthetic colour the image shows.

    Neighbouring circles of a row can touch and form one region, so a region counts as many circles
    as its area holds (the area of one circle is measured on a reference drawing of the same size).
    """
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)  # (height, width, 3)
    one = _circle_area(image.width)
    counts = {}
    for name, rgb in COLOURS.items():
        mask = np.abs(pixels - np.array(rgb, dtype=np.int16)).sum(axis=-1) <= 30
        counts[name] = sum(round(area / one) for area in _components(mask) if area >= MIN_CIRCLE_PIXELS)
    return counts


def _judge(counts: dict[str, int], count: int, colour: str) -> tuple[float, str]:
    """Text-faithfulness score (1-4) and the evidence for one image."""
    others = {name: n for name, n in counts.items() if n and name != colour}
    shown = ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "no circles"
    if counts[colour] == count and not others:
        return 4.0, f"shows {shown}, exactly what was asked"
    if counts[colour] == 0:
        return 1.5, f"shows {shown} and none in {colour}, so the colour is wrong"
    return 2.0, f"shows {shown} where {count} {colour} were asked, so the count is wrong"


def circle_pointwise(conversation: Conversation) -> str:
    """The pointwise critique of the one image of a synthetic-request conversation."""
    if len(conversation.images) != 1:
        raise ValueError(f"a text-to-image pointwise conversation has one image, got {len(conversation.images)}")
    count, colour = parse_circle_request(conversation.user_text)
    score, seen = _judge(count_circles(conversation.images[0]), count, colour)
    scores = {}
    for dim in dimensions(Task.T2I):
        if dim.key == "text_faithfulness":
            scores[dim.key] = DimensionScore(dim.key, score, justification=f"The image {seen}.")
        elif dim.na_allowed:
            scores[dim.key] = DimensionScore(dim.key, None, True, "No text was requested.")
        else:
            scores[dim.key] = DimensionScore(dim.key, 3.5, justification="A clean flat drawing without artifacts.")
    word = next(w for w, n in _WORDS.items() if n == count)
    critique = Critique(task=Task.T2I, scores=scores, analysis=f"The request asks for {word} {colour} circles.",
                        summary="Follows the request." if score == 4.0 else "Misses the request.",
                        refinement_comments="State the count and the colour plainly.",
                        refined_request=f"Exactly {word} {colour} circles on a white background.",
                        status=ParseStatus.OK)
    return render_critique(critique)


def circle_rationale(conversation: Conversation) -> str:
    """The critique of a synthetic-request conversation: pairwise (two candidates) or pointwise (one image)."""
    task = Task.parse(conversation.task or Task.T2I)
    if task is not Task.T2I:
        raise ValueError("the circle counter judges text-to-image pairs only")
    if conversation.mode == "pointwise":
        return circle_pointwise(conversation)
    if conversation.mode and conversation.mode != "pairwise":
        raise ValueError(f"the circle counter writes pairwise or pointwise critiques, not {conversation.mode!r} ones")
    images = conversation.images
    if len(images) != 2:
        raise ValueError(f"a pairwise conversation has two images, got {len(images)}")
    count, colour = parse_circle_request(conversation.user_text)
    (score_a, seen_a), (score_b, seen_b) = (_judge(count_circles(image), count, colour) for image in images)
    winner = (Preference.TIE if score_a == score_b else Preference.A if score_a > score_b else Preference.B)
    dims = {}
    for dim in dimensions(task):
        if dim.key == "text_faithfulness":
            dims[dim.key] = PairDimension(dim.key, score_a, score_b, winner=winner,
                                          justification=f"Image A {seen_a}. Image B {seen_b}.")
        elif dim.na_allowed:
            dims[dim.key] = PairDimension(dim.key, None, None, True, True, Preference.TIE,
                                          "No text was requested in either image.")
        else:
            dims[dim.key] = PairDimension(dim.key, 3.5, 3.5, winner=Preference.TIE,
                                          justification="Both are clean flat drawings without artifacts.")
    summary = {Preference.A: "Image A follows the request more closely.",
               Preference.B: "Image B follows the request more closely.",
               Preference.TIE: "Both images follow the request equally well."}[winner]
    return render_pairwise_critique(PairwiseCritique(task=task, dims=dims, summary=summary))


class CircleCritic(Critic):
    """The circle counter behind the Critic interface, so the PARROT phases use it as teacher or judge."""

    def __init__(self) -> None:
        super().__init__(MODEL_ID, (Task.T2I,))

    def complete(self, conversations: Sequence[Conversation]) -> list[Generation]:
        results = []
        for conversation in conversations:
            start = time.perf_counter()
            text = circle_rationale(conversation)
            results.append(Generation(text, completion_tokens=len(text.split()),
                                      latency_s=time.perf_counter() - start))
        return results

    def complete_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        generation = self.complete([conversation])[0]
        yield generation.text
        yield generation
