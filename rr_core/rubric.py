"""The project's rubric: tasks, dimensions, exact headings and level labels, and our level wording.

What must match the released checkpoints is exact here: the dimension headings the model writes and
the parser reads, their order per task, and the level labels ("Full match", "Minor flaws" ...) of
the prompt's rubric (README, "Prompt layout and template import"). The scopes and level
descriptions are the project's own words, carrying the same evidence at the same level of detail as
the training prompt; they are not that prompt's text (`python -m rr_core.prompts import` brings the
byte-exact prompt in from a file the user has).

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

    `heading` is the exact string the model writes and the parser looks for; `scope` says what the
    aspect covers (shown in parentheses after the heading in the prompt); `labels` and `levels` are
    the four anchor levels' exact labels and our descriptions of them (index 0 is level 1), shown
    to the model in the prompt and to users beside every score.
    """

    key: str
    heading: str
    scope: str
    labels: tuple[str, str, str, str]
    levels: tuple[str, str, str, str]
    na_allowed: bool = False

    def level_description(self, score: float | None) -> str:
        """"Label: description" of the level nearest to `score` ("" for a missing score)."""
        if score is None:
            return ""
        level = int(round(min(max(score, SCORE_MIN), SCORE_MAX)))
        return f"{self.labels[level - 1]}: {self.levels[level - 1]}"


TEXT_FAITHFULNESS_T2I = Dimension(
    key="text_faithfulness",
    heading="Text Faithfulness",
    scope="How closely the image carries out what the instruction asks for",
    labels=("Major deviations", "Some mismatch", "Minor mismatch", "Full match"),
    levels=(
        "The main subject or most of the requested content is missing or wrong: key objects, colours "
        "or actions differ from the instruction, or the image shows something else entirely.",
        "Several requested elements are missing or wrong (an object, a colour, a count, an action), "
        "or clearly unrequested content has been hallucinated into the scene.",
        "The instruction is followed apart from a small detail, such as a slightly off colour, a "
        "secondary object or a minor attribute.",
        "Every requested object, colour, attribute, action and relation is present and correct, and "
        "nothing unrequested has been added.",
    ),
)

TEXT_FAITHFULNESS_EDIT = Dimension(
    key="text_faithfulness",
    heading="Text Faithfulness",
    scope="How closely the edited image carries out the editing instruction",
    labels=("Major deviations", "Some mismatch", "Minor mismatch", "Full match"),
    levels=(
        "The requested change is absent or contradicts the instruction, or unrequested changes "
        "take its place.",
        "The change is only partly made, misplaced or loosely related: requested objects, colours or "
        "actions are partly wrong, or unrequested changes were hallucinated.",
        "The change is made with a small deviation in colour, size, position or extent.",
        "The edit does exactly what the instruction asks, with the right objects, colours and "
        "actions, and changes nothing that was not requested.",
    ),
)

IMAGE_FAITHFULNESS = Dimension(
    key="image_faithfulness",
    heading="Image Faithfulness",
    scope="How well the parts the instruction leaves alone, and the key elements of the source "
    "image, are preserved",
    labels=("Fails to use input", "Partial mismatch", "Minor mismatch", "Uses input fully"),
    levels=(
        "The result ignores the source image: it is redrawn, or the subject's identity, the "
        "background or the style is lost.",
        "Noticeable unrequested changes to the subject's identity, the background, the style or the "
        "lighting.",
        "Small unrequested differences that a careful look reveals, such as a slight shift in "
        "lighting, colour or a background detail.",
        "Only the requested change differs: background, style, lighting and the subject's identity "
        "are kept exactly as in the source image.",
    ),
)

PHYSICAL_QUALITY = Dimension(
    key="physical_quality",
    heading="Physical and Visual Quality",
    scope="Technical errors, composition, realism and physical plausibility",
    labels=("Severe flaws", "Some flaws", "Minor flaws", "No noticeable flaws"),
    levels=(
        "Heavy artifacts or broken physics dominate: garbled objects, distorted anatomy or "
        "geometry, floating objects, shadows cast in the wrong direction, or a scene that is hard "
        "to read.",
        "Visible problems draw the eye: inconsistent lighting or shadows, wrong perspective, warped "
        "anatomy or geometry, obvious seams, blur or noise.",
        "Small imperfections that do not spoil the image, such as a faint seam, slight blur or "
        "noise, or a minor lighting inconsistency.",
        "Lighting, shadows, geometry, anatomy and perspective are all plausible; there are no "
        "seams, blur or noise, and the composition is sound.",
    ),
)

TEXT_RENDERING = Dimension(
    key="text_rendering",
    heading="Text Rendering",
    scope="Judged only when the instruction asks for text to appear in the image",
    labels=("Major deviations", "Partial match", "Mostly match", "Full match"),
    levels=(
        "The requested text is missing, unreadable or badly distorted. If the instruction asks for "
        "no text at all, write N/A instead of a score.",
        "Parts of the text are wrong: misspelled or missing words, or garbled letters.",
        "The text is legible and nearly right, with one small slip such as a wrong letter or wrong "
        "capitalisation.",
        "Every requested word is present, legible, correctly spelled and capitalised, and placed "
        "where the instruction asks.",
    ),
    na_allowed=True,
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
    """The text shown beside a score in the UI, e.g. "3.2 — Minor flaws: Small imperfections ..."."""
    if not_applicable:
        return "N/A — not applicable to this request"
    if score is None:
        return "missing — the critique did not give this score"
    return f"{score:.1f} — {dimension(task, key).level_description(score)}"
