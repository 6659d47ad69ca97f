"""Configuration dataclasses from plain mappings (YAML sections, flags), with unknown keys rejected.

Every entry point takes a documented dataclass; a typo in a YAML file or a flag must be an error
naming the known keys, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def reject_unknown_keys(cls: type, data: Mapping[str, Any], what: str,
                        error: type[Exception] = ValueError) -> None:
    """Raise `error` when `data` has keys that dataclass `cls` does not declare."""
    known = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"Unknown {what} setting(s): {', '.join(unknown)}; known: {', '.join(known)}.")


def from_dict(cls: type[T], data: Mapping[str, Any], what: str, error: type[Exception] = ValueError) -> T:
    """`cls(**data)` after `reject_unknown_keys`."""
    reject_unknown_keys(cls, data, what, error)
    return cls(**dict(data))
