"""Import the checkpoints' own prompt, byte for byte, from a file the user has.

The project ships prompts in the checkpoints' layout but in its own words (it may not copy anyone's
prose). A user who has the reference text (a clone of the reference repository's README, a dataset
card, or the SFT conversations) can import it: `python -m rr_core.prompts import SOURCE`. This
module finds the system and user prompts in that file, turns each into a template (the request
and the images become {request} and {image_N}; every other byte is kept), checks it against the
rubric and the layout (rr_core.prompt_layout), and saves it under the data folder, where template
resolution prefers it over the shipped template for every preset.

Sources read:
- Markdown (README, dataset card): fenced code blocks. A block with the request label is a user
  prompt; a short block that names an evaluator and has no request label is a system prompt, paired
  with the nearest user prompt of its task ("edit" in its text marks the edit task).
- JSONL (SFT data): one conversation per line, as OpenAI-style `messages` (role/content, content as
  a string or a list of parts), sharegpt `conversations` (from/value) with an optional top-level
  `system`. Images are `<image>` markers or image parts. The most common template per task and mode
  wins; the others are counted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from rr_core.errors import TemplateError
from rr_core.prompt_layout import IMAGE_LABELS, REQUEST_LABEL, check_layout, image_label, images_heading
from rr_core.prompts import MODES, PromptTemplate, imported_dir, load_template_file
from rr_core.rubric import Task

IMAGE_MARKER = "<image>"
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.DOTALL | re.MULTILINE)
_SYSTEM_MAX_CHARS = 800


@dataclass(frozen=True)
class FoundPrompt:
    """A system and user text pair for one task and mode, already in template form."""

    task: Task
    mode: str
    system: str
    user: str
    where: str


@dataclass(frozen=True)
class ImportResult:
    """What an import saved: one row per task and mode, and how many variants were set aside."""

    saved: tuple[tuple[PromptTemplate, Path, int, int], ...]  # template, file, occurrences, other variants
    source: Path

    def lines(self) -> list[str]:
        out = []
        for template, path, count, others in self.saved:
            extra = f"; {others} other variant(s) set aside" if others else ""
            out.append(f"{template.task.value} {template.mode}: {template.template_version} -> {path} "
                       f"({count} occurrence(s){extra})")
        return out


def _kind(user: str) -> tuple[Task, str] | None:
    """The task and mode a user prompt is for, from its images line and image labels."""
    for (task, mode), labels in sorted(IMAGE_LABELS.items(), key=lambda item: -len(item[1])):
        if images_heading(task, mode) not in user:
            continue
        lines = user.splitlines()
        wanted = [image_label(n, name).rstrip() for n, name in enumerate(labels, start=1)]
        if all(any(line.startswith(label) for line in lines) for label in wanted):
            return task, mode
    return None


def to_template_text(user: str, task: Task, mode: str, where: str) -> str:
    """The user prompt with its request and images turned into {request} and {image_N}.

    The request is everything after the request label up to the images line (a placeholder such
    as "{prompt}" in a README, a real request in SFT data); each image label keeps its text and
    the rest of its line becomes the image's slot. Image markers anywhere else are dropped (the
    slots carry the images).
    """
    heading = images_heading(task, mode)
    start = user.find(REQUEST_LABEL)
    end = user.find("\n" + heading, start)
    if start < 0 or end < 0:
        raise TemplateError(f"{where}: expected {REQUEST_LABEL.strip()!r} followed by the line {heading!r}")
    text = user[: start + len(REQUEST_LABEL)] + "{request}" + user[end:]
    lines = text.split("\n")
    for number, name in enumerate(IMAGE_LABELS[(task, mode)], start=1):
        label = image_label(number, name)
        index = next((i for i, line in enumerate(lines) if line.startswith(label.rstrip())), None)
        if index is None:
            raise TemplateError(f"{where}: the image label {label.strip()!r} is missing")
        lines[index] = label + "{image_%d}" % number
    return "\n".join(lines).replace(IMAGE_MARKER, "")


def _user_and_system_from_markdown(text: str, where: str) -> list[FoundPrompt]:
    blocks = [(m.start(), m.group("body")) for m in _FENCE.finditer(text)]
    users, systems = [], []
    for index, (offset, body) in enumerate(blocks):
        body = body[:-1] if body.endswith("\n") else body
        line = text.count("\n", 0, offset) + 1
        if REQUEST_LABEL.strip() in body:
            kind = _kind(body)
            if kind is not None:
                users.append((index, kind, body, f"{where}, code block at line {line}"))
        elif len(body) <= _SYSTEM_MAX_CHARS and "evaluator" in body.lower():
            task = Task.EDIT if "edit" in body.lower() else Task.T2I
            systems.append((index, task, body.strip()))
    found = []
    for index, (task, mode), body, at in users:
        candidates = [(abs(index - s_index), s_index > index, system) for s_index, s_task, system in systems
                      if s_task == task]
        if not candidates:
            raise TemplateError(f"{at}: found the {task.value} {mode} user prompt but no {task.value} system "
                                "prompt (a short code block describing the evaluator)")
        system = min(candidates)[2]
        found.append(FoundPrompt(task, mode, system, to_template_text(body, task, mode, at), at))
    return found


def _text_of(content: object) -> str:
    """A message's content as text; image parts become image markers."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                out.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") in ("image", "image_url"):
                out.append(IMAGE_MARKER)
        return "".join(out)
    return ""


def _turns(record: dict) -> tuple[str, str]:
    """(system, first user turn) of one SFT record in any of the supported shapes: OpenAI-style
    `messages` (role/content) or sharegpt `conversations` (from/value, the user as human or user)."""
    system, user = str(record.get("system") or ""), ""
    if isinstance(record.get("messages"), list):
        turns, role_key, text_key, user_roles = record["messages"], "role", "content", ("user",)
    elif isinstance(record.get("conversations"), list):
        turns, role_key, text_key, user_roles = record["conversations"], "from", "value", ("human", "user")
    else:
        return system, user
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        role, text = turn.get(role_key), _text_of(turn.get(text_key))
        if role == "system" and not system:
            system = text
        elif role in user_roles and not user:
            user = text
    return system, user


def _from_jsonl(text: str, where: str) -> list[FoundPrompt]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TemplateError(f"{where}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            continue
        system, user = _turns(record)
        kind = _kind(user) if REQUEST_LABEL.strip() in user else None
        if kind is None:
            continue
        at = f"{where}, line {number}"
        if not system.strip():
            raise TemplateError(f"{at}: the conversation has no system turn")
        found.append(FoundPrompt(kind[0], kind[1], system, to_template_text(user, *kind, at), at))
    return found


def find_prompts(path: Path) -> list[FoundPrompt]:
    """Every prompt in the checkpoints' layout that `path` holds (Markdown or JSONL)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text (give a README in Markdown or SFT data in JSONL)") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    looks_jsonl = path.suffix.lower() in (".jsonl", ".json") or first.lstrip().startswith("{")
    found = _from_jsonl(text, str(path)) if looks_jsonl else _user_and_system_from_markdown(text, str(path))
    if not found:
        how = "conversation records" if looks_jsonl else "fenced code blocks"
        raise TemplateError(f"{path}: no prompt in the checkpoints' layout found in its {how} (looked for a user "
                            f"prompt with {REQUEST_LABEL.strip()!r} and the images line)")
    return found


def _yaml_text(template: PromptTemplate, source: Path) -> str:
    header = (f"# Imported by `python -m rr_core.prompts import` from {source.name} on "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. The text is the source's own, byte for byte.\n"
              "# Delete this file to go back to the shipped template.\n")
    data = {"name": template.name, "version": template.version, "task": template.task.value,
            "mode": template.mode, "system": template.system, "user": template.user}
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1_000_000)


def import_prompts(source: str | Path, data_dir: str | Path | None = None) -> ImportResult:
    """Find, convert, check and save the prompts in `source`; nothing is saved unless every one passes.

    `data_dir` overrides rr_core.paths.data_dir() (the templates go to <data_dir>/prompts).
    """
    source = Path(source)
    if not source.is_file():
        raise TemplateError(f"{source}: no such file")
    groups: dict[tuple[Task, str], Counter] = {}
    first_seen: dict[tuple[Task, str, str, str], str] = {}
    for prompt in find_prompts(source):
        key = (prompt.task, prompt.mode)
        groups.setdefault(key, Counter())[(prompt.system, prompt.user)] += 1
        first_seen.setdefault((prompt.task, prompt.mode, prompt.system, prompt.user), prompt.where)
    target_dir = Path(data_dir) / "prompts" if data_dir is not None else imported_dir()
    chosen = []
    for (task, mode), variants in sorted(groups.items(), key=lambda item: (item[0][0].value, MODES.index(item[0][1]))):
        (system, user), count = variants.most_common(1)[0]
        where = first_seen[(task, mode, system, user)]
        check_layout(user, task, mode, where)
        template = PromptTemplate(name=f"{task.value}_{mode}", version="imported", task=task, mode=mode,
                                  system=system, user=user, path=where, origin="imported")
        chosen.append((template, target_dir / f"{task.value}_{mode}.yaml", count, len(variants) - 1))
    # Every file is written beside its target and read back before any replaces a target, so a
    # failed import leaves the previous templates as they were.
    target_dir.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for template, path, count, others in chosen:
            tmp = path.with_name(f".{path.name}.tmp")
            staged.append(tmp)
            tmp.write_text(_yaml_text(template, source), encoding="utf-8")
            loaded = load_template_file(tmp, origin="imported")
            if (loaded.system, loaded.user) != (template.system, template.user):
                raise TemplateError(f"{path}: the saved template does not read back byte for byte")
    except BaseException:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    saved = []
    for tmp, (template, path, count, others) in zip(staged, chosen):
        tmp.replace(path)
        saved.append((load_template_file(path, origin="imported"), path, count, others))
    return ImportResult(saved=tuple(saved), source=source)
