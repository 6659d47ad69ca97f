"""The checkpoints' prompt layout: the exact labels of their training prompt, and a check against it.

The released checkpoints were fine-tuned on one prompt layout; its labels, sections and their order
are exact here, the prose between them is free (the shipped templates word it in the project's own
way, an imported template carries the reference's own text). `check_layout` is what an imported
template must pass before it replaces a shipped one: a prompt that names a dimension the parser does
not read, or lists them in another order, would make every critique partial.
"""

from __future__ import annotations

import re

from rr_core.errors import TemplateError
from rr_core.rubric import Task, dimensions

REQUEST_LABEL = "User Instruction: "
RUBRIC_HEADING = "### Critical Aspects & Scoring Rubric"
METHODOLOGY_HEADING = "### Scoring Methodology (CRITICAL)"
ANCHOR = "**Anchor:**"
ADJUST = "**Justify and Adjust:**"
OUTPUT_INTRO = "Output your evaluation in the following format:"
_COUNT_WORDS = {1: "one image", 2: "two images", 3: "three images"}

# The labels of the images, in order, each followed by its image on its own line.
IMAGE_LABELS: dict[tuple[Task, str], tuple[str, ...]] = {
    (Task.T2I, "pointwise"): ("Generated Image",),
    (Task.EDIT, "pointwise"): ("Source Image", "Edited Image"),
    (Task.T2I, "pairwise"): ("Image A", "Image B"),
    (Task.EDIT, "pairwise"): ("Source Image", "Image A", "Image B"),
}


def images_heading(task: Task, mode: str) -> str:
    """ "You are provided with two images:" and the like."""
    return f"You are provided with {_COUNT_WORDS[len(IMAGE_LABELS[(task, mode)])]}:"


def image_label(number: int, name: str) -> str:
    """The text before an image: "1. Generated Image " (the image follows on the same line)."""
    return f"{number}. {name} "


def level_line(level: int, label: str) -> str:
    return f"- **{level} ({label}):**"


def dimension_line(number: int, heading: str) -> str:
    return f"**{number}. {heading}**"


_RUBRIC_DIMENSION = re.compile(r"^\*\*(\d+)\.\s*([^*\n]+?)\*\*", re.MULTILINE)
_SKELETON_DIMENSION = re.compile(r"^(\d+)\.\s+([^:\n]+?):", re.MULTILINE)


def _find(text: str, label: str, start: int, what: str, where: str) -> int:
    found = text.find(label, start)
    if found < 0:
        before = "anywhere" if start == 0 else "after the previous section"
        raise TemplateError(f"{where}: {what} {label!r} is missing {before}")
    return found + len(label)


def _check_dimensions(found: list[str], expected: list[str], part: str, where: str, task: Task) -> None:
    if found != expected:
        raise TemplateError(
            f"{where}: the {part} names the dimensions {found}; the {task.value} checkpoint was trained on "
            f"{expected}, in this order")


def check_layout(user: str, task: Task, mode: str, where: str = "template") -> None:
    """Raise TemplateError naming the first label, section or dimension out of the checkpoints' layout.

    `user` is a user message with {request} and {image_N} placeholders and the rubric and output
    format written out (an imported template, or a shipped one after rendering).
    """
    dims = dimensions(task)
    position = _find(user, REQUEST_LABEL + "{request}", 0, "the request label", where)
    position = _find(user, images_heading(task, mode), position, "the images line", where)
    for number, name in enumerate(IMAGE_LABELS[(task, mode)], start=1):
        position = _find(user, image_label(number, name) + "{image_%d}" % number, position, "the image label",
                         where)
    position = _find(user, RUBRIC_HEADING, position, "the rubric heading", where)
    rubric_end = user.find(METHODOLOGY_HEADING, position)
    if rubric_end < 0:
        raise TemplateError(f"{where}: the heading {METHODOLOGY_HEADING!r} is missing after the rubric")
    rubric = user[position:rubric_end]
    _check_dimensions([m.group(2).strip() for m in _RUBRIC_DIMENSION.finditer(rubric)], [d.heading for d in dims],
                      "rubric", where, task)
    for number, dim in enumerate(dims, start=1):
        at = _find(rubric, dimension_line(number, dim.heading), 0, "the rubric line", where)
        for level in (4, 3, 2, 1):
            at = _find(rubric, level_line(level, dim.labels[level - 1]), at, f"{dim.heading}'s level line", where)
    position = rubric_end + len(METHODOLOGY_HEADING)
    position = _find(user, ANCHOR, position, "the methodology step", where)
    position = _find(user, ADJUST, position, "the methodology step", where)
    position = _find(user, OUTPUT_INTRO, position, "the output line", where)
    skeleton = user[position:]
    judgement = skeleton.find("# Detailed Judgement")
    if judgement < 0:
        raise TemplateError(f"{where}: the output format has no '# Detailed Judgement' section")
    _check_dimensions([m.group(2).strip() for m in _SKELETON_DIMENSION.finditer(skeleton, judgement)],
                      [d.heading for d in dims], "output format", where, task)
    fields = (["# User Request Analysis", "## Score:", "# User Request Refinement:", "## Refined Request:"]
              if mode == "pointwise" else ["## Score A:", "## Score B:", "## Winner:"])
    for field in fields:
        if field not in skeleton:
            raise TemplateError(f"{where}: the output format has no {field!r}")
