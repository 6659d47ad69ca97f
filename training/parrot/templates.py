"""The PARROT teacher's instructions (assets/prompts/parrot_anchored_{task}.yaml) and the prompts built from them.

The pairwise prompt itself always comes from rr_core.prompts.build_pairwise (the one prompt source);
the template only adds the anchoring text (phase 1) or the judge's text (phase 2) after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from PIL import Image

from rr_core.critique import PairwiseCritique, Preference
from rr_core.errors import TemplateError
from rr_core.prompts import PROMPTS_DIR, Conversation, build_pairwise, read_template_mapping
from rr_core.rubric import Task, dimensions

_FIELDS = ("name", "version", "task", "preference_words", "anchor", "judge")


@dataclass(frozen=True)
class ParrotTemplate:
    name: str
    version: str
    task: Task
    preference_words: dict[str, str]
    anchor: str
    judge: str
    path: str = ""

    @property
    def template_version(self) -> str:
        return f"{self.name}@{self.version}"


def load_parrot_template(path: str | Path) -> ParrotTemplate:
    """Read and check a PARROT template file: every field, both placeholders, a word per preference."""
    path = Path(path)
    data = read_template_mapping(path, _FIELDS, "PARROT template")
    words = {str(k): str(v) for k, v in (data["preference_words"] or {}).items()}
    if set(words) != {p.value for p in Preference}:
        raise TemplateError(f"{path}: preference_words needs exactly the keys A, B, tie; got {sorted(words)}")
    if "{preference}" not in data["anchor"]:
        raise TemplateError(f"{path}: the anchor text has no {{preference}} placeholder")
    if "{rationale}" not in data["judge"]:
        raise TemplateError(f"{path}: the judge text has no {{rationale}} placeholder")
    return ParrotTemplate(str(data["name"]), str(data["version"]), Task.parse(data["task"]), words,
                          str(data["anchor"]).strip(), str(data["judge"]).strip(), str(path))


@cache
def shipped_parrot_template(task: Task) -> ParrotTemplate:
    return load_parrot_template(PROMPTS_DIR / f"parrot_anchored_{Task.parse(task).value}.yaml")


def _pairwise(task: Task, request: str, image_a: Image.Image, image_b: Image.Image,
              source: Image.Image | None) -> Conversation:
    return build_pairwise(task, request, image_a, image_b, source_image=source if task is Task.EDIT else None)


def _append(conversation: Conversation, text: str, template: ParrotTemplate) -> Conversation:
    """The conversation with `text` after its user message; task and mode are kept, because a
    grammar-constrained backend picks the critique grammar from them."""
    return replace(conversation, parts=[*conversation.parts, "\n\n" + text],
                   template_version=f"{conversation.template_version}+{template.template_version}")


def anchored_conversation(task: Task, request: str, image_a: Image.Image, image_b: Image.Image,
                          source: Image.Image | None, label: Preference,
                          template: ParrotTemplate | None = None) -> Conversation:
    """Phase 1: the pairwise prompt plus the known preference and the instruction to argue it."""
    template = template or shipped_parrot_template(task)
    anchor = template.anchor.replace("{preference}", template.preference_words[label.value])
    return _append(_pairwise(task, request, image_a, image_b, source), anchor, template)


def rationale_for_judge(critique: PairwiseCritique) -> str:
    """The justifications (and summary) of a parsed rationale, with every score and winner line left out."""
    lines = []
    for number, dim in enumerate(dimensions(critique.task), start=1):
        entry = critique.dims.get(dim.key)
        lines.append(f"{number}. {dim.heading}: {entry.justification if entry else ''}")
    if critique.summary:
        lines.append(f"Summary: {critique.summary}")
    return "\n".join(lines)


def judge_conversation(task: Task, request: str, image_a: Image.Image, image_b: Image.Image,
                       source: Image.Image | None, rationale: str,
                       template: ParrotTemplate | None = None) -> Conversation:
    """Phase 2: the pairwise prompt (no label) plus another evaluator's observations to check."""
    template = template or shipped_parrot_template(task)
    return _append(_pairwise(task, request, image_a, image_b, source),
                   template.judge.replace("{rationale}", rationale), template)
