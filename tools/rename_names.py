"""Rename the names that meant two things (issue 13, item 5), so a word means the same in every layer.

Run from the repository root: `python tools/rename_names.py [--check] [paths...]`. It rewrites Python,
JavaScript, Markdown and YAML files in place, prints each change as `path:line: old -> new`, and
exits with status 1 when it meets an occurrence it cannot classify (printed as `UNCLASSIFIED`), so
that a person decides instead of the script guessing. It is idempotent: a second run changes nothing.
`--check` only reports (exit 1 when something would change).

Why a script and not a hand edit: several branches change the tree at the same time; the lead runs
this again after merging them, so code written in the old style on another branch is renamed too.

The renames (old -> new, and why):

| old | new | why |
|---|---|---|
| `Round` (storage.models, ORM class) | `CandidateRow` | a row is one candidate image of a round, not a round |
| table `rounds` | table `candidates` | same reason; migration 0006 renames it |
| `Round.prompt` / `rounds.prompt` | `CandidateRow.request` | it holds the session's request, while "prompt" is the generator's input everywhere else |
| `Round.refined_prompt` | `CandidateRow.refined_request` | it is the critique's refined request (`Critique.refined_request`) |
| `StudioSession` (storage.models) | `SessionRow` | a session row; "Studio" is the product's name |
| `StudioSession.prompt` / `sessions.prompt` | `SessionRow.request` | the session's request (its first prompt) |
| `StudioSession.rounds` (relationship) | `SessionRow.candidates` | it lists candidate rows |
| `CritiqueRow.round` (relationship) | `CritiqueRow.candidate` | a critique judges one candidate |
| `round_id`, `round_ids` (everywhere, API included) | `candidate_id`, `candidate_ids` | they were always a candidate row's id |
| `round_a`, `round_b`, `round_a_id`, `round_b_id` | `candidate_a`, `candidate_b`, `candidate_a_id`, `candidate_b_id` | a pair is two candidates |
| `parent_round_id` | `parent_candidate_id` | it points at a candidate row |
| `record_round`, `session_rounds`, `get_round_for_user`, `rounds_by_ids`, `_round_in_session` | `record_candidate`, `session_candidates`, `get_candidate_for_user`, `candidates_by_ids`, `_candidate_in_session` | repository functions on candidate rows |
| `round_image` (Services, Runs), `round_row` (local names of candidate rows) | `candidate_image`, `candidate_row` | both name one candidate |
| `Studio` (rr_core.presets) | `Models` | the loaded models of a preset (what `ModelsLike` describes) |
| `ScriptedStudio` (tests) | `ScriptedModels` | the test double of `Models` |

Kept on purpose: `RoundResult`, `RoundView`, `round_index`, `round_counts` (real rounds of the loop),
`used_prompt` (the prompt the generator used: "prompt" already means that), prose such as
f"Round {i + 1}", the product name "RationalRewards Studio", and the migrations already released
(files under storage/migrations/versions/ and tests pinned to older revisions are never rewritten).

How an occurrence is classified:
- whole identifiers from the table are renamed wherever they appear (code, strings, docs);
- `Round` / `Studio` as Python names are renamed only in files that import them from storage.models /
  rr_core.presets (elsewhere they are reported); inside strings `Round.x` is the class, other
  `Round` is prose;
- `.prompt` / `.refined_prompt` / `.round` are renamed when the object before the dot is a database
  row (a name such as `row`, `session`, `round_row`, `stored[0]`, or an ORM class), kept when it is
  an engine or view object (`result`, `event`, `...rounds[i]`, ...), and reported otherwise; this
  only applies in files that use storage (import storage.models or the repository);
- `prompt=` / `refined_prompt=` keywords of `create_session`, `record_candidate` and the row classes
  become `request=` / `refined_request=`, and so do those parameters inside those functions;
- the table name: `"rounds"` as a string in storage/ or looked for in SQL text (`"rounds" in sql.lower()`), `rounds.<column>` in strings, `'rounds'` in SQL;
- Markdown between `<!-- rename_names: off -->` and `<!-- rename_names: on -->` is kept as written.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

# Identifiers renamed wherever they stand as a whole word.
IDENTIFIERS: dict[str, str] = {
    "round_id": "candidate_id",
    "round_ids": "candidate_ids",
    "round_a": "candidate_a",
    "round_b": "candidate_b",
    "round_a_id": "candidate_a_id",
    "round_b_id": "candidate_b_id",
    "parent_round_id": "parent_candidate_id",
    "record_round": "record_candidate",
    "session_rounds": "session_candidates",
    "get_round_for_user": "get_candidate_for_user",
    "rounds_by_ids": "candidates_by_ids",
    "_round_in_session": "_candidate_in_session",
    "StudioSession": "SessionRow",
    "ScriptedStudio": "ScriptedModels",
    "round_image": "candidate_image",
    "round_row": "candidate_row",
}
IDENTIFIER_RE = re.compile(r"(?<![\w.])(" + "|".join(sorted(IDENTIFIERS, key=len, reverse=True)) + r")\b")
# In prose and strings a dotted use (`repo.record_round`) is renamed too.
IDENTIFIER_TEXT_RE = re.compile(r"(?<!\w)(" + "|".join(sorted(IDENTIFIERS, key=len, reverse=True)) + r")\b")

ROW_ATTRIBUTES = {"prompt": "request", "refined_prompt": "refined_request", "round": "candidate"}
# Calls (and the functions themselves) whose `prompt` / `refined_prompt` is the session's request.
ROW_CALLS = {"create_session", "record_candidate", "record_round", "CandidateRow", "SessionRow", "Round",
             "StudioSession"}
# Objects before `.prompt` that are database rows ...
ROW_RECEIVERS = re.compile(
    r"^(?:.*\.)?(?:Round|CandidateRow|StudioSession|SessionRow|CritiqueRow|row|row_a|row_b|round_|round_row|candidate_row|"
    r"critique_row|critique|critiques\[.*\]|session|owned|studio|r|s|stored\[.*\]|fourth\[.*\]|members\[.*\]|rows\[.*\]|"
    r"round_a|round_b|candidate_a|candidate_b|round|candidate|db\.get\(.*\)|s\.get\(.*\))$")
# ... and objects that are the engine's or the view's (kept).
ENGINE_RECEIVERS = re.compile(
    r"^(?:.*\.rounds\[.*\]|.*\.result|result|last|event|pending|config|request|args|self|view|state|"
    r"t2i|edit|record|item|sample|spec|candidate_view|round_view|live|more|first|reopened)$")

SKIPPED_PARTS = ("storage/migrations/versions/", "tests/storage/test_storage_migrations.py",
                 "tests/storage/test_migration_names.py", "tests/test_rename_names.py",
                 "tools/rename_names.py", ".git/", "node_modules/",
                 ".cache/", ".venv/")
SUFFIXES = {".py", ".js", ".md", ".yaml", ".yml"}


@dataclass
class Report:
    changes: list[str] = field(default_factory=list)
    unclassified: list[str] = field(default_factory=list)


@dataclass
class Edit:
    start: int
    end: int
    new: str


def _offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _apply(text: str, edits: list[Edit]) -> str:
    out, last = [], 0
    for edit in sorted(edits, key=lambda e: e.start):
        if edit.start < last:
            continue
        out.append(text[last:edit.start])
        out.append(edit.new)
        last = edit.end
    out.append(text[last:])
    return "".join(out)


def _rename_column_references(text: str) -> str:
    """Qualified references to the renamed columns and to the `rounds` table's columns."""
    text = re.sub(r"\brounds\.(?=(?:id|prompt|refined_prompt|used_prompt|session_id)\b)", "candidates.", text)
    text = re.sub(r"\bCandidateRow\.prompt\b", "CandidateRow.request", text)
    text = re.sub(r"\bCandidateRow\.refined_prompt\b", "CandidateRow.refined_request", text)
    return re.sub(r"\bSessionRow\.prompt\b", "SessionRow.request", text)


def rename_string(body: str, path: str, storage_file: bool, presets_aware: bool,
                  unclassified: list[str], where: str) -> str:
    """Rename inside the text of a string literal (or a docstring)."""
    body = IDENTIFIER_TEXT_RE.sub(lambda m: IDENTIFIERS[m.group(1)], body)
    body = re.sub(r"\bRound\.(?=\w)", "CandidateRow.", body)
    body = _rename_column_references(body)
    body = re.sub(r"name = 'rounds'", "name = 'candidates'", body)
    body = body.replace("`refined_prompt`", "`refined_request`")  # only the column had that name
    # The not-found message for a candidate id, and regexes that match it ("no session|no round").
    body = re.sub(r"\bno round(?= \{|\||$)", "no candidate", body)
    if re.search(r"\b(?:record_candidate|create_session)\(", body):  # code inside a string (a child script)
        body = re.sub(r"\bprompt=", "request=", body)
        body = re.sub(r"\brefined_prompt=", "refined_request=", body)
    if storage_file and body == "rounds":
        body = "candidates"
    if storage_file and body == "round" and path.endswith("storage/models.py"):
        body = "candidate"
    if "Studio" in body and presets_aware:
        body = re.sub(r"(?<!RationalRewards )\bStudio\b", "Models", body)
        body = body.replace("presets.Studio", "presets.Models")
    return body


def _string_token(tok: tokenize.TokenInfo, *args: object) -> str:
    text = tok.string
    match = re.match(r"^([rRbBuUfF]*)('''|\"\"\"|'|\")", text)
    if not match:
        return text
    prefix, quote = match.groups()
    inner = text[len(prefix) + len(quote):-len(quote)]
    return prefix + quote + rename_string(inner, *args) + quote  # type: ignore[arg-type]


def _receiver(tokens: list[tokenize.TokenInfo], dot: int) -> str:
    """The text of the expression before the `.` at index `dot` (a dotted chain with calls/subscripts)."""
    parts: list[str] = []
    i = dot - 1
    while i >= 0:
        tok = tokens[i]
        if tok.type == tokenize.OP and tok.string in ")]":
            depth, j = 0, i
            while j >= 0:
                if tokens[j].string in ")]":
                    depth += 1
                elif tokens[j].string in "([":
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            parts.append("".join(t.string for t in tokens[j:i + 1]))
            i = j - 1
            continue
        if tok.type == tokenize.NAME:
            parts.append(tok.string)
            if i > 0 and tokens[i - 1].string == ".":
                parts.append(".")
                i -= 2
                continue
        elif tok.type == tokenize.STRING:
            parts.append("'str'")
        break
    return "".join(reversed(parts))


# A local name assigned from a query of rows (`rounds = list(db.scalars(select(Round)...))`) holds rows.
ROW_ASSIGNMENT = re.compile(r"^\s*(\w+)\s*=.*(?:select\((?:Round|CandidateRow|StudioSession|SessionRow)\b|"
                            r"session_rounds\(|session_candidates\(|rows\(\w+, (?:Round|CandidateRow)\b)", re.M)


def _tests_sql(tokens: list[tokenize.TokenInfo], index: int) -> bool:
    """Whether the string at `index` is looked for in SQL text (`"rounds" in statement.lower()`):
    then it names the table, not the API's list of rounds."""
    if index + 1 >= len(tokens) or tokens[index + 1].string not in ("in", "not"):
        return False
    tail = []
    for tok in tokens[index + 2:index + 12]:
        if tok.string in (")", "]", ",", "and", "or", "if", "for") or tok.type == tokenize.NEWLINE:
            break
        tail.append(tok.string)
    return bool(re.search(r"lower|sql|statement", "".join(tail), re.I))


def rename_python(path: str, text: str, report: Report) -> str:
    storage_file = path.startswith("storage/")
    row_aware = storage_file or bool(re.search(r"from storage(\.models| import| \.repository)|import storage\.|"
                                               r"storage\.models|repository as repo", text))
    models_aware = path == "storage/models.py" or bool(re.search(r"from storage\.models import", text))
    presets_aware = path == "rr_core/presets.py" or "rr_core.presets" in text or "from rr_core import presets" in text
    row_names = set(ROW_ASSIGNMENT.findall(text))
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)]
    starts = _offsets(text)

    def pos(rc: tuple[int, int]) -> int:
        return starts[rc[0] - 1] + rc[1]

    edits: list[Edit] = []
    call_stack: list[str] = []
    def_stack: list[tuple[str, int]] = []  # (function name, indent column) of the def we are inside
    for index, tok in enumerate(tokens):
        where = f"{path}:{tok.start[0]}"
        prev = tokens[index - 1] if index else None
        nxt = tokens[index + 1] if index + 1 < len(tokens) else None
        if tok.type == tokenize.NAME and prev is not None and prev.string == "def" and nxt is not None:
            indent = prev.start[1]
            while def_stack and def_stack[-1][1] >= indent:
                def_stack.pop()
            def_stack.append((tok.string, indent))
        elif tok.type == tokenize.NAME and def_stack and tok.start[1] <= def_stack[-1][1] and (
                prev is None or prev.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.NL, tokenize.NEWLINE)):
            while def_stack and tok.start[1] <= def_stack[-1][1]:
                def_stack.pop()
        if tok.type == tokenize.OP and tok.string in "([{":
            call_stack.append(prev.string if tok.string == "(" and prev is not None and prev.type == tokenize.NAME
                              else "")
        elif tok.type == tokenize.OP and tok.string in ")]}":
            if call_stack:
                call_stack.pop()
        if tok.type == tokenize.STRING:
            new = _string_token(tok, path, storage_file, presets_aware, report.unclassified, where)
            if tok.string in ('"rounds"', "'rounds'") and _tests_sql(tokens, index):
                new = tok.string.replace("rounds", "candidates")
            if new != tok.string:
                edits.append(Edit(pos(tok.start), pos(tok.end), new))
            continue
        if tok.type == tokenize.COMMENT:
            new = IDENTIFIER_TEXT_RE.sub(lambda m: IDENTIFIERS[m.group(1)], tok.string)
            if new != tok.string:
                edits.append(Edit(pos(tok.start), pos(tok.end), new))
            continue
        if tok.type != tokenize.NAME:
            continue
        name = tok.string
        new_name: str | None = None
        after_dot = prev is not None and prev.string == "."
        if name in IDENTIFIERS:
            new_name = IDENTIFIERS[name]
        elif name == "Round":
            if models_aware:
                new_name = "CandidateRow"
            else:
                report.unclassified.append(f"{where}: `Round` in a file that does not import it from storage.models")
        elif name == "Studio":
            if presets_aware:
                new_name = "Models"
            else:
                report.unclassified.append(f"{where}: `Studio` in a file that does not import rr_core.presets")
        elif name in ROW_ATTRIBUTES and row_aware:
            keyword = nxt is not None and nxt.string == "=" and call_stack and call_stack[-1] in ROW_CALLS
            in_row_def = bool(def_stack) and def_stack[-1][0] in ROW_CALLS and not after_dot and name != "round"
            class_attr = (path == "storage/models.py" and not after_dot and nxt is not None and nxt.string == ":")
            if after_dot:
                receiver = _receiver(tokens, index - 1)
                if name == "round" and not re.search(r"critique|row|CritiqueRow", receiver, re.I):
                    if not ENGINE_RECEIVERS.match(receiver):
                        report.unclassified.append(f"{where}: `{receiver}.round`")
                elif ((ROW_RECEIVERS.match(receiver) or re.sub(r"\[.*\]$", "", receiver) in row_names)
                      and not ENGINE_RECEIVERS.match(receiver)):
                    new_name = ROW_ATTRIBUTES[name]
                elif not ENGINE_RECEIVERS.match(receiver):
                    report.unclassified.append(f"{where}: `{receiver}.{name}` (row or engine object?)")
            elif keyword or in_row_def or (class_attr and name != "round"):
                new_name = ROW_ATTRIBUTES[name]
            elif class_attr and name == "round":
                new_name = "candidate"
        elif name == "rounds" and path == "storage/models.py" and nxt is not None and nxt.string == ":":
            new_name = "candidates"
        if new_name is not None and new_name != name:
            edits.append(Edit(pos(tok.start), pos(tok.end), new_name))
    new_text = _apply(text, edits)
    _log_changes(path, text, new_text, report)
    return new_text


PINNED_REGION = re.compile(r"(<!-- rename_names: off -->.*?<!-- rename_names: on -->)", re.S)


def rename_prose(path: str, text: str, report: Report) -> str:
    """Markdown, YAML and JavaScript. Text between `<!-- rename_names: off -->` and
    `<!-- rename_names: on -->` is left alone (a table of old names must keep them)."""
    parts = PINNED_REGION.split(text)
    new = "".join(part if PINNED_REGION.fullmatch(part) else _rename_prose_part(part) for part in parts)
    _log_changes(path, text, new, report)
    return new


def _rename_prose_part(text: str) -> str:
    """Identifiers, and code spans naming the classes and the table."""
    new = IDENTIFIER_TEXT_RE.sub(lambda m: IDENTIFIERS[m.group(1)], text)
    new = re.sub(r"`Round`", "`CandidateRow`", new)
    new = re.sub(r"\bRound\.(?=[a-z_])", "CandidateRow.", new)
    new = _rename_column_references(new)
    new = re.sub(r"`rounds`", "`candidates`", new)
    new = re.sub(r"\bround ([AB] )?id\b", lambda m: f"candidate {m.group(1) or ''}id", new)
    return re.sub(r"`(rr_core\.presets\.)?Studio`", lambda m: f"`{m.group(1) or ''}Models`", new)


def _log_changes(path: str, old: str, new: str, report: Report) -> None:
    if old == new:
        return
    for number, (a, b) in enumerate(zip(old.splitlines(), new.splitlines(), strict=False), start=1):
        if a != b:
            report.changes.append(f"{path}:{number}: {a.strip()} -> {b.strip()}")


def files(root: Path, paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for given in paths or ["."]:
        base = root / given
        candidates = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for p in candidates:
            rel = p.relative_to(root).as_posix()
            if p.suffix in SUFFIXES and not any(part in rel or rel.startswith(part) for part in SKIPPED_PARTS):
                found.append(p)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or folders (default: the whole tree)")
    parser.add_argument("--check", action="store_true", help="report only; exit 1 when something would change")
    args = parser.parse_args(argv)
    root = Path.cwd()
    report = Report()
    changed = 0
    for path in files(root, args.paths):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        new = rename_python(rel, text, report) if path.suffix == ".py" else rename_prose(rel, text, report)
        if new != text:
            changed += 1
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for line in report.changes:
        print(line)
    for line in report.unclassified:
        print(f"UNCLASSIFIED {line}")
    print(f"{'would change' if args.check else 'changed'} {changed} file(s); "
          f"{len(report.unclassified)} unclassified occurrence(s)")
    if report.unclassified or (args.check and changed):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
