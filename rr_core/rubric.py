"""The rubric the RationalRewards checkpoints were trained on: tasks, dimensions, headings, levels.

Every other piece of the protocol (prompt rendering, the parser, the reward, the decoding grammar,
the UI's score bars) reads its dimensions from here, so adding or renaming a dimension is a change
in this one file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SCORE_MIN = 1.0
SCORE_MAX = 4.0


class Task(str, enum.Enum):
    """What is being judged: a generated image (t2i) or an edit of a source image (edit)."""

    T2I = "t2i"
    EDIT = "edit"

    @classmethod
    def parse(cls, value: "str | Task") -> "Task":
        if isinstance(value, Task):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"unknown task {value!r}: expected 't2i' or 'edit'") from None


@dataclass(frozen=True)
class Dimension:
    """One scored aspect of an image.

    `heading` is the exact string the model writes and the parser looks for; `levels` are the four
    anchor descriptions (index 0 is level 1) shown to the model in the prompt and to users beside
    every score.
    """

    key: str
    heading: str
    question: str
    levels: tuple[str, str, str, str]
    na_allowed: bool = False
    na_rule: str = ""

    def level_description(self, score: float | None) -> str:
        """The anchor description for the level nearest to `score` ("" for a missing score)."""
        if score is None:
            return ""
        level = int(round(min(max(score, SCORE_MIN), SCORE_MAX)))
        return self.levels[level - 1]


TEXT_FAITHFULNESS_T2I = Dimension(
    key="text_faithfulness",
    heading="Text Faithfulness",
    question="Does the image show everything the request asks for: objects, counts, attributes, "
    "spatial relations, style and mood?",
    levels=(
        "severe mismatch: the main subject or most of the request is missing or wrong",
        "some mismatch: several requested elements or attributes are missing or wrong",
        "minor mismatch: the request is followed except for a small detail",
        "full match: every element of the request is present and correct",
    ),
)

TEXT_FAITHFULNESS_EDIT = Dimension(
    key="text_faithfulness",
    heading="Text Faithfulness",
    question="Does the edited image carry out the instruction: the requested change, in the "
    "requested place, to the requested extent?",
    levels=(
        "instruction ignored or contradicted: the requested change is absent or wrong",
        "partly done: the change is incomplete, misplaced or only loosely related",
        "mostly done: the change is made with a small deviation from the instruction",
        "fully done: the change is exactly what the instruction asks for",
    ),
)

IMAGE_FAITHFULNESS = Dimension(
    key="image_faithfulness",
    heading="Image Faithfulness",
    question="Is everything the instruction did not ask to change kept from the source image: "
    "identity, background, layout, lighting and style?",
    levels=(
        "severe drift: the image is largely redrawn or the subject's identity is lost",
        "some drift: noticeable unrequested changes to the subject, background or style",
        "minor drift: small unrequested changes that a careful look reveals",
        "fully preserved: only the requested change differs from the source",
    ),
)

PHYSICAL_QUALITY = Dimension(
    key="physical_quality",
    heading="Physical and Visual Quality",
    question="Is the image physically plausible and well made: anatomy, geometry, lighting, "
    "textures, composition, free of artifacts?",
    levels=(
        "severe flaws: broken anatomy or geometry, heavy artifacts, or an unreadable scene",
        "some flaws: visible distortions or artifacts that draw the eye",
        "minor flaws: small imperfections that do not spoil the image",
        "no flaws: plausible, clean and well composed",
    ),
)

TEXT_RENDERING = Dimension(
    key="text_rendering",
    heading="Text Rendering",
    question="Is any text the request asks for rendered legibly, spelled correctly and placed "
    "where asked?",
    levels=(
        "severe errors: the requested text is missing or illegible",
        "some errors: misspellings, missing words or garbled glyphs",
        "minor errors: legible and correct but for a small glitch",
        "perfect: every requested word is present, legible and correctly spelled",
    ),
    na_allowed=True,
    na_rule="Write N/A when the request asks for no text in the image.",
)

DIMENSIONS: dict[Task, tuple[Dimension, ...]] = {
    Task.T2I: (TEXT_FAITHFULNESS_T2I, PHYSICAL_QUALITY, TEXT_RENDERING),
    Task.EDIT: (TEXT_FAITHFULNESS_EDIT, IMAGE_FAITHFULNESS, PHYSICAL_QUALITY, TEXT_RENDERING),
}


def dimensions(task: Task | str) -> tuple[Dimension, ...]:
    """The dimensions of `task`, in the order the model writes them."""
    return DIMENSIONS[Task.parse(task)]


def dimension(task: Task | str, key: str) -> Dimension:
    for dim in dimensions(task):
        if dim.key == key:
            return dim
    known = ", ".join(d.key for d in dimensions(task))
    raise KeyError(f"task {Task.parse(task).value!r} has no dimension {key!r} (known: {known})")


def dimension_keys(task: Task | str) -> tuple[str, ...]:
    return tuple(d.key for d in dimensions(task))


def describe_score(task: Task | str, key: str, score: float | None, not_applicable: bool = False) -> str:
    """The text shown beside a score in the UI, e.g. "3.2 — minor flaws: small imperfections ..."."""
    if not_applicable:
        return "N/A — not applicable to this request"
    if score is None:
        return "missing — the critique did not give this score"
    return f"{score:.1f} — {dimension(task, key).level_description(score)}"
