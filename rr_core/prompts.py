"""Prompt templates (data files under assets/prompts/) and the one builder that renders them.

A shipped template holds the wording, in the checkpoints' layout (rr_core.prompt_layout); the rubric
and the output skeleton are rendered from rr_core.rubric and rr_core.critique_format, so a new
dimension changes prompt, parser and grammar together. A template imported from the reference's
own text (`python -m rr_core.prompts import SOURCE`, see rr_core.prompt_import) is saved under the
data folder and, once there, is the one every preset uses. The builder produces a neutral
`Conversation` that becomes a transformers chat (images as PIL), an OpenAI-compatible message list
(images as base64 PNG) or a sharegpt record (images as a list).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from PIL import Image

from rr_core.critique_format import output_format
from rr_core.errors import InvalidRequest, TemplateError
from rr_core.images import data_url, prepare_for_critic
from rr_core.limits import MAX_REQUEST_CHARS
from rr_core.paths import data_dir
from rr_core.prompt_layout import check_layout, dimension_line, level_line
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
# Where a template comes from: the project's assets, an import of the reference's text, a user's file.
ORIGINS = ("shipped", "imported", "file")
# name@version must leave room for the origin and the hash in the 64-character storage column.
MAX_NAME_VERSION = 40


def refuse_nul(text: str, name: str) -> str:
    """`text` unchanged, or a specific error when it holds a NUL character (U+0000): no model wants
    one, and PostgreSQL cannot store one in a text column (it reached the user as a database error)."""
    if "\x00" in text:
        raise InvalidRequest(f"{name} holds a NUL character (U+0000 at position {text.index(chr(0))}); "
                             "remove it.")
    return text


def validate_request(text: str) -> str:
    """The user's request, stripped; empty or over-long requests, and requests holding a NUL
    character, get a specific error."""
    if not isinstance(text, str):
        raise InvalidRequest(f"The request must be text, got {type(text).__name__}.")
    text = refuse_nul(text.strip(), "The request")
    if not text:
        raise InvalidRequest("The request is empty: describe the image you want (or the edit to make).")
    if len(text) > MAX_REQUEST_CHARS:
        raise InvalidRequest(
            f"The request is {len(text)} characters long; the limit is {MAX_REQUEST_CHARS}. Shorten it."
        )
    return text


@dataclass(frozen=True)
class PromptTemplate:
    """One task and mode's system and user text; `origin` is one of ORIGINS."""

    name: str
    version: str
    task: Task
    mode: str
    system: str
    user: str
    path: str = ""
    origin: str = "file"

    @property
    def template_version(self) -> str:
        """What every critique records: origin, name@version and a hash of the text the model sees.

        The hash covers the rendered rubric and output format too, so a rubric change with an
        unchanged template file still yields a new version.
        """
        return f"{self.origin}:{self.name}@{self.version}#{content_hash(self)}"


def fill_sections(template: PromptTemplate) -> str:
    """The user text with {rubric} and {output_format} written out ({request} and images left as slots)."""
    return (template.user.replace("{rubric}", render_rubric(template.task))
            .replace("{output_format}", output_format(template.task, template.mode)))


def content_hash(template: PromptTemplate) -> str:
    """The first 8 hex digits of the SHA-256 of the system text and the filled user text."""
    text = template.system + "\0" + fill_sections(template)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _check_template(template: PromptTemplate) -> None:
    if template.mode not in MODES:
        raise TemplateError(f"{template.path}: mode must be one of {MODES}, got {template.mode!r}")
    if len(f"{template.name}@{template.version}") > MAX_NAME_VERSION:
        raise TemplateError(f"{template.path}: name and version together must fit in {MAX_NAME_VERSION} "
                            f"characters (they are recorded with every critique)")
    if "{request}" not in template.user:
        raise TemplateError(f"{template.path}: the user text has no {{request}} placeholder")
    expected = list(range(1, IMAGE_COUNT[(template.task, template.mode)] + 1))
    found = [int(n) for n in _IMAGE_SLOT.findall(template.user)]
    if found != expected:
        raise TemplateError(
            f"{template.path}: a {template.task.value} {template.mode} template needs image slots "
            f"{['{image_%d}' % n for n in expected]} once each in order, found {['{image_%d}' % n for n in found]}"
        )
    if template.origin != "file":
        check_layout(fill_sections(template), template.task, template.mode, template.path)


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


def load_template_file(path: str | Path, origin: str = "file") -> PromptTemplate:
    """Load and check a template file (the shipped ones, an imported one or a user's own: same format).

    Shipped and imported templates must also follow the checkpoints' layout; a user's own file may
    word and arrange its prompt freely. An imported template's text is kept byte for byte (no
    stripping): it is the reference's own.
    """
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    path = Path(path)
    data = read_template_mapping(path, ("name", "version", "task", "mode", "system", "user"), "prompt template")
    try:
        task = Task.parse(data["task"])
    except ValueError as exc:
        raise TemplateError(f"{path}: {exc}") from exc
    keep = (lambda text: str(text)) if origin == "imported" else (lambda text: str(text).strip())
    template = PromptTemplate(name=str(data["name"]), version=str(data["version"]), task=task,
                              mode=str(data["mode"]), system=keep(data["system"]), user=keep(data["user"]),
                              path=str(path), origin=origin)
    _check_template(template)
    return template


@lru_cache(maxsize=None)
def shipped_template(task: Task, mode: str = "pointwise") -> PromptTemplate:
    """The template under assets/prompts/ (whether or not an imported one replaces it)."""
    return load_template_file(PROMPTS_DIR / f"{Task.parse(task).value}_{mode}.yaml", origin="shipped")


def imported_dir() -> Path:
    """Where `python -m rr_core.prompts import` saves templates: <data folder>/prompts."""
    return data_dir() / "prompts"


def imported_path(task: Task | str, mode: str) -> Path:
    return imported_dir() / f"{Task.parse(task).value}_{mode}.yaml"


@lru_cache(maxsize=16)
def _load_imported(path: str, stamp: tuple[int, int]) -> PromptTemplate:
    """Cached per file and modification stamp, so a new import is picked up without a restart."""
    return load_template_file(path, origin="imported")


def active_template(task: Task | str, mode: str = "pointwise") -> PromptTemplate:
    """The template every preset uses for `task` and `mode`: the imported one if there is one, else the shipped one."""
    task = Task.parse(task)
    path = imported_path(task, mode)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return shipped_template(task, mode)
    return _load_imported(str(path), (stat.st_mtime_ns, stat.st_size))


def describe_active_templates() -> list[dict[str, str]]:
    """One row per task and mode for the UI: origin, the recorded template_version, the file."""
    rows = []
    for task in Task:
        for mode in MODES:
            template = active_template(task, mode)
            rows.append({"task": task.value, "mode": mode, "origin": template.origin,
                         "template_version": template.template_version, "path": template.path})
    return rows


def render_rubric(task: Task) -> str:
    """The rubric section in the checkpoints' layout, from rr_core.rubric (headings, scopes, labels, levels)."""
    blocks = []
    for number, dim in enumerate(dimensions(task), start=1):
        lines = [f"{dimension_line(number, dim.heading)} ({dim.scope})"]
        lines += [f"{level_line(level, dim.labels[level - 1])} {dim.levels[level - 1]}" for level in (4, 3, 2, 1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


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
    text = fill_sections(template)
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
        return active_template(task, mode)
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


def main(argv: list[str] | None = None) -> int:
    """`python -m rr_core.prompts import SOURCE [--data-dir DIR]` and `python -m rr_core.prompts show`."""
    parser = argparse.ArgumentParser(prog="python -m rr_core.prompts",
                                     description="Show the active prompt templates, or import the checkpoints' own prompt.")
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser("import", help="import the checkpoints' prompt from a README (Markdown) or SFT "
                                                 "conversations (JSONL) you have")
    imports.add_argument("source", help="the file holding the prompt")
    imports.add_argument("--data-dir", default=None,
                         help="data folder (default: RR_DATA_DIR, else ./data); templates go to <data-dir>/prompts")
    commands.add_parser("show", help="which template each task and mode uses now")
    args = parser.parse_args(argv)
    if args.command == "show":
        for row in describe_active_templates():
            sys.stdout.write(f"{row['task']} {row['mode']}: {row['template_version']} ({row['path']})\n")
        return 0
    from rr_core.prompt_import import import_prompts

    try:
        result = import_prompts(args.source, args.data_dir)
    except TemplateError as exc:
        sys.stderr.write(f"import refused: {exc}\n")
        return 2
    for line in result.lines():
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
