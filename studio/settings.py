"""Every value a caller sends, checked as the type it is: run settings, ids, flags and verdicts.

Why one module: the browser's number boxes send floats, `gradio_client` sends whatever JSON the
caller wrote, and each place that once did `int(value)` or `bool(value)` on its own silently turned
a seed of 1.5 into 1, `parquet="yes"` into True, and 2**63 or Infinity into an OverflowError that
reached the user as Gradio's generic text. Here a whole number is an int, or a float with no
fractional part (what a number box sends for 3); a flag is a bool; text is a str; anything else is
refused with an `InvalidRequest` that names the field and the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from rr_core.errors import InvalidRequest
from rr_core.prompts import refuse_nul
from rr_core.limits import (
    MAX_CANDIDATES,
    MAX_COMMENT_CHARS,
    MAX_REQUEST_CHARS,
    MAX_ROUNDS,
    MAX_SEED,
    MAX_STEPS,
)

MAX_ID = 2**63 - 1
"""Row ids are signed 64-bit integers in SQLite and PostgreSQL."""

MAX_SESSION_ID_CHARS = 64
"""Session ids are 32 hex characters; anything much longer is not one."""

MAX_GUIDANCE = 100.0
MAX_SIDE = 4096
VERDICTS = ("accept", "reject", "correct")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high]: an int, or a float with no fractional part; never a bool,
    a string or a float such as 1.5 (which would otherwise run as 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{name} must be a whole number, got {_shown(value)}.")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidRequest(f"{name} must be a whole number, got {_shown(value)}.")
        value = int(value)
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {_shown(value)}.")
    return value


def number(value: Any, name: str, low: float, high: float) -> float:
    """`value` as a finite float in [low, high]; never a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a number, got {_shown(value)}.")
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low:g} and {high:g}, got {_shown(value)}.")
    return float(value)


def flag(value: Any, name: str) -> bool:
    """`value` as a bool; "yes", 1 or "false" are refused, since each reads differently to someone."""
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false, got {_shown(value)}.")
    return value


def text(value: Any, name: str, max_chars: int, shown_as: str | None = None) -> str:
    """`value` as a str of at most `max_chars` characters (`shown_as` names it in the length message)
    with no NUL character (PostgreSQL cannot store one)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text, got {_shown(value)}.")
    if len(value) > max_chars:
        raise InvalidRequest(f"{shown_as or name} is over {max_chars} characters; shorten it.")
    return refuse_nul(value, shown_as or name)


def optional_text(value: Any, name: str) -> str | None:
    """`value` as a str (with no NUL character) or None; how long it may be is the receiver's rule (a
    request's length is rr_core.prompts.validate_request's)."""
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text, got {_shown(value)}.")
    return None if value is None else refuse_nul(value, name)


def record_id(value: Any, what: str) -> int:
    """A row id (`what`: "candidate id", "critique id") as sent by a caller."""
    return whole_number(value, what, 1, MAX_ID)


MAX_SKIPPED = 10_000
"""Items a reviewer may leave out of one visit's queue (the Review view's trail)."""
PAIR_KEY = re.compile(r"pair:[1-9][0-9]{0,18}-[1-9][0-9]{0,18}")


def _skipped(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise InvalidRequest(f"skipped must be a list, got {_shown(value)}.")
    if len(value) > MAX_SKIPPED:
        raise InvalidRequest(f"skipped holds {len(value)} items; the limit is {MAX_SKIPPED}.")
    return list(value)


def record_ids(value: Any, what: str) -> list[int]:
    """A list of row ids (the critiques a reviewer skipped), each checked as `record_id`."""
    return [record_id(item, what) for item in _skipped(value)]


def pair_keys(value: Any) -> list[str]:
    """A list of pair keys ("pair:<low>-<high>", as next_pair answers) a reviewer skipped."""
    keys = _skipped(value)
    for key in keys:
        if not isinstance(key, str) or not PAIR_KEY.fullmatch(key):
            raise InvalidRequest(f'skipped must hold pair keys such as "pair:3-7", got {_shown(key)}.')
    return keys


def session_id(value: Any) -> str:
    """A session id as sent by a caller (surrounding spaces from a pasted id are dropped)."""
    if not isinstance(value, str) or len(value) > MAX_SESSION_ID_CHARS:
        raise InvalidRequest(f"A session id is a short text such as the one in your list, got {_shown(value)}.")
    return value.strip()


WHOLE_SETTINGS: dict[str, tuple[int, int]] = {
    "rounds": (1, MAX_ROUNDS), "candidates": (1, MAX_CANDIDATES), "seed": (0, MAX_SEED),
    "steps": (1, MAX_STEPS), "patience": (1, MAX_ROUNDS), "width": (16, MAX_SIDE), "height": (16, MAX_SIDE),
    "max_retries": (0, 10)}
NUMBER_SETTINGS: dict[str, tuple[float, float]] = {"stop_threshold": (1.0, 4.0), "guidance": (0.0, MAX_GUIDANCE)}
FLAG_SETTINGS = ("fresh_seeds", "stream_tokens")


def run_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's settings from the UI or the API, each checked as its type and range; None stays None
    (the loop's default, or no stop rule for `stop_threshold`). Keys not checked here pass through
    for `LoopConfig.from_dict`, which refuses unknown ones."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise InvalidRequest(f"settings must be a mapping of names to values, got {_shown(settings)}.")
    values = dict(settings)
    for key, value in values.items():
        if value is None:
            continue
        if key in WHOLE_SETTINGS:
            values[key] = whole_number(value, key, *WHOLE_SETTINGS[key])
        elif key in NUMBER_SETTINGS:
            values[key] = number(value, key, *NUMBER_SETTINGS[key])
        elif key in FLAG_SETTINGS:
            values[key] = flag(value, key)
        elif key == "negative_prompt":
            values[key] = text(value, "negative_prompt", MAX_REQUEST_CHARS, shown_as="The negative prompt")
    last_seed = values.get("seed", 0) or 0
    if last_seed + (values.get("candidates") or 1) - 1 > MAX_SEED:
        raise InvalidRequest(f"seed must be at most {MAX_SEED} minus the candidates per round, since "
                             "candidate i uses seed + i.")
    return values


def verdicts(value: Any) -> dict[str, dict[str, Any]]:
    """An annotator's verdicts: {dimension: {"verdict": accept|reject|correct, "score": number,
    "comment": text}}; the repository then checks the dimension belongs to the critique's task."""
    if not isinstance(value, Mapping) or not value:
        raise InvalidRequest(f"verdicts must be a mapping of dimension names to verdicts, got {_shown(value)}.")
    checked: dict[str, dict[str, Any]] = {}
    for key, entry in value.items():
        if not isinstance(key, str):
            raise InvalidRequest(f"dimension names must be text, got {_shown(key)}.")
        if not isinstance(entry, Mapping):
            raise InvalidRequest(f"The verdict of {key} must be a mapping such as "
                                 f'{{"verdict": "accept"}}, got {_shown(entry)}.')
        verdict = entry.get("verdict", "")
        if not isinstance(verdict, str) or verdict.lower() not in VERDICTS:
            raise InvalidRequest(f"The verdict of {key} must be one of {', '.join(VERDICTS)}, got {_shown(verdict)}.")
        score = entry.get("score")
        if score in (None, ""):
            score = None
        else:
            score = number(score, f"The score of {key}", 1.0, 4.0)
        comment = text(entry.get("comment", ""), f"The comment of {key}", MAX_COMMENT_CHARS)
        checked[key] = {"verdict": verdict.lower(), "score": score, "comment": comment}
    return checked
