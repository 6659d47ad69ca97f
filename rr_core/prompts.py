"""Prompt templates (data files under assets/prompts/) and the one builder that renders them.

A template holds the wording; the rubric and the output skeleton are rendered from rr_core.rubric
and rr_core.critique_format, so a new dimension changes prompt, parser and grammar together. The
builder produces a neutral `Conversation` that becomes a transformers chat (images as PIL), an
OpenAI-compatible message list (images as base64 PNG) or a sharegpt record (images as a list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from PIL import Image

from rr_core.critique_format import output_format
from rr_core.errors import InvalidRequest, TemplateError
from rr_core.images import data_url, prepare_for_critic
from rr_core.limits import MAX_REQUEST_CHARS
from rr_core.rubric import Task, dimensions

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"
MODES = ("pointwise", "pairwise")
IMAGE_COUNT = {
    (Task.T2I, "pointwise"): 1,
    (Task.EDIT, "pointwise"): 2,
    (Task.T2I, "pairwise"): 2,
    (Task.EDIT, "pairwise"): 3,
}
_IMAGE_SLOT = re.compile(r"\{image_(\d+)\}")


def validate_request(text: str) -> str:
    """The user's request, stripped; empty or over-long requests get a specific error."""
    if not isinstance(text, str):
        raise InvalidRequest(f"The request must be text, got {type(text).__name__}.")
    text = text.strip()
    if not text:
        raise InvalidRequest("The request is empty: describe the image you want (or the edit to make).")
    if len(text) > MAX_REQUEST_CHARS:
        raise InvalidRequest(
            f"The request is {len(text)} characters long; the limit is {MAX_REQUEST_CHARS}. Shorten it."
        )
    return text


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    task: Task
    mode: str
    system: str
    user: str
    path: str = ""

    @property
    def template_version(self) -> str:
        return f"{self.name}@{self.version}"


def _check_template(template: PromptTemplate) -> None:
    if template.mode not in MODES:
        raise TemplateError(f"{template.path}: mode must be one of {MODES}, got {template.mode!r}")
    if "{request}" not in template.user:
        raise TemplateError(f"{template.path}: the user text has no {{request}} placeholder")
    expected = list(range(1, IMAGE_COUNT[(template.task, template.mode)] + 1))
    found = [int(n) for n in _IMAGE_SLOT.findall(template.user)]
    if found != expected:
        raise TemplateError(
            f"{template.path}: a {template.task.value} {template.mode} template needs image slots "
            f"{['{image_%d}' % n for n in expected]} once each in order, found {['{image_%d}' % n for n in found]}"
        )


def read_template_mapping(path: Path, fields: tuple[str, ...], what: str) -> dict:
    """A template file's YAML mapping with exactly `fields` (any missing or unknown is a TemplateError)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: a template is a YAML mapping")
    missing = [key for key in fields if key not in data]
    unknown = sorted(set(data) - set(fields))
    if missing or unknown:
        raise TemplateError(f"{path}: missing fields {missing}, unknown fields {unknown}")
    return data


def load_template_file(path: str | Path) -> PromptTemplate:
    """Load and check a template file (the shipped ones or a user's own, same format)."""
    path = Path(path)
    data = read_template_mapping(path, ("name", "version", "task", "mode", "system", "user"), "prompt template")
    try:
        task = Task.parse(data["task"])
    except ValueError as exc:
        raise TemplateError(f"{path}: {exc}") from exc
    template = PromptTemplate(name=str(data["name"]), version=str(data["version"]), task=task,
                              mode=str(data["mode"]), system=str(data["system"]).strip(),
                              user=str(data["user"]).strip(), path=str(path))
    _check_template(template)
    return template


@lru_cache(maxsize=None)
def shipped_template(task: Task, mode: str = "pointwise") -> PromptTemplate:
    return load_template_file(PROMPTS_DIR / f"{Task.parse(task).value}_{mode}.yaml")


def render_rubric(task: Task) -> str:
    lines = []
    for number, dim in enumerate(dimensions(task), start=1):
        lines.append(f"{number}. {dim.heading}: {dim.question}")
        for level in (4, 3, 2, 1):
            lines.append(f"   - {level}: {dim.levels[level - 1]}")
        if dim.na_rule:
            lines.append(f"   - {dim.na_rule}")
    return "\n".join(lines)


@dataclass
class Conversation:
    """A system message plus one user message of interleaved text and images."""

    system: str
    parts: list[str | Image.Image] = field(default_factory=list)
    template_version: str = ""
    task: Task | None = None
    mode: str = ""

    @property
    def images(self) -> list[Image.Image]:
        return [part for part in self.parts if isinstance(part, Image.Image)]

    @property
    def user_text(self) -> str:
        """The user message with each image written as <image> (sharegpt's convention)."""
        return "".join(part if isinstance(part, str) else "<image>" for part in self.parts)

    def to_transformers(self) -> list[dict]:
        content = [{"type": "text", "text": p} if isinstance(p, str) else {"type": "image", "image": p}
                   for p in self.parts]
        return [{"role": "system", "content": [{"type": "text", "text": self.system}]},
                {"role": "user", "content": content}]

    def to_openai(self) -> list[dict]:
        content = [{"type": "text", "text": p} if isinstance(p, str)
                   else {"type": "image_url", "image_url": {"url": data_url(p)}} for p in self.parts]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": content}]

    def to_sharegpt(self) -> dict:
        return {"messages": [{"role": "system", "content": self.system},
                             {"role": "user", "content": self.user_text}],
                "images": self.images}


def _render(template: PromptTemplate, request: str, images: list[Image.Image]) -> Conversation:
    text = (template.user.replace("{rubric}", render_rubric(template.task))
            .replace("{output_format}", output_format(template.task, template.mode)))
    parts: list[str | Image.Image] = []
    position = 0
    # Image slots are found before the request is inserted, so a request that happens to contain
    # "{image_1}" stays text.
    for match in _IMAGE_SLOT.finditer(text):
        if match.start() > position:
            parts.append(text[position:match.start()].replace("{request}", request))
        parts.append(prepare_for_critic(images[int(match.group(1)) - 1]))
        position = match.end()
    if position < len(text):
        parts.append(text[position:].replace("{request}", request))
    return Conversation(system=template.system, parts=parts, template_version=template.template_version,
                        task=template.task, mode=template.mode)


def _template_for(task: Task, mode: str, template: PromptTemplate | str | Path | None) -> PromptTemplate:
    if template is None:
        return shipped_template(task, mode)
    if not isinstance(template, PromptTemplate):
        template = load_template_file(template)
    if template.task != task or template.mode != mode:
        raise TemplateError(f"{template.path}: is a {template.task.value} {template.mode} template, "
                            f"not {task.value} {mode}")
    return template


def build_pointwise(task: Task | str, request: str, image: Image.Image, source_image: Image.Image | None = None,
                    template: PromptTemplate | str | Path | None = None) -> Conversation:
    """The critique prompt for one image (edits: the source image first, then the edited one)."""
    task = Task.parse(task)
    request = validate_request(request)
    if task == Task.EDIT and source_image is None:
        raise InvalidRequest("An edit critique needs the source image as well as the edited image.")
    images = [source_image, image] if task == Task.EDIT else [image]
    return _render(_template_for(task, "pointwise", template), request, images)


def build_pairwise(task: Task | str, request: str, image_a: Image.Image, image_b: Image.Image,
                   source_image: Image.Image | None = None,
                   template: PromptTemplate | str | Path | None = None) -> Conversation:
    """The comparison prompt for two candidates of one request (edits: after the source image)."""
    task = Task.parse(task)
    request = validate_request(request)
    if task == Task.EDIT and source_image is None:
        raise InvalidRequest("An edit comparison needs the source image as well as both edits.")
    images = [source_image, image_a, image_b] if task == Task.EDIT else [image_a, image_b]
    return _render(_template_for(task, "pairwise", template), request, images)
