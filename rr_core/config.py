"""The one configuration loader: YAML files, dotted `key=value` overrides, dataclasses with unknown keys rejected.

Every entry point takes a documented dataclass (the loop, the generators, the critics, the RL and
PARROT runs). A typo in a YAML file, an override or a flag must be an error naming the known keys,
never a silently ignored setting (nanoGPT, TRL). The app's command line (`rr_core.refine`) and
training's configs (`training.config` re-exports these names) read their files here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or mapping that names unknown keys or has values of the wrong shape."""


def reject_unknown_keys(cls: type, data: Mapping[str, Any], what: str,
                        error: type[Exception] = ValueError) -> None:
    """Raise `error` when `data` has keys that dataclass `cls` does not declare."""
    known = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"Unknown {what} setting(s): {', '.join(unknown)}; known: {', '.join(known)}.")


def from_dict(cls: type[T], data: Mapping[str, Any], what: str, error: type[Exception] = ValueError) -> T:
    """`cls(**data)` after `reject_unknown_keys` (one level; the class converts nested values itself)."""
    reject_unknown_keys(cls, data, what, error)
    return cls(**dict(data))


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass inside `X`, `X | None`, or None when the annotation is not one."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _nested(cls: type, value: dict[str, Any], where: str) -> Any:
    """A nested section: through the class's own `from_dict` when it has one (it knows its conversions)."""
    own = getattr(cls, "from_dict", None)
    if callable(own):
        try:
            return own(value)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return from_mapping(cls, value, where)


def _convert(annotation: Any, value: Any, where: str) -> Any:
    inner = _dataclass_of(annotation)
    if inner is not None and isinstance(value, dict):
        return _nested(inner, value, where)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        item = _dataclass_of(args[0]) if args else None
        if item is not None:
            value = [_nested(item, v, f"{where}[{i}]") if isinstance(v, dict) else v for i, v in enumerate(value)]
        return tuple(value) if origin is tuple else list(value)
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclass sections and lists of them.

    Unknown keys raise ConfigError naming the known ones, at every level.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    reject_unknown_keys(cls, data, where or cls.__name__, ConfigError)
    hints = typing.get_type_hints(cls)
    kwargs = {key: _convert(hints[key], value, f"{where}.{key}" if where else key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file that holds one mapping (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a YAML mapping")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply command-line `a.b.c=value` overrides (values parsed as YAML scalars) to a nested mapping."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        if not all(keys):
            raise ConfigError(f"override {item!r} has an empty key")
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        try:
            node[keys[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not a YAML scalar ({exc})") from None
    return data


def load_mapping(path: str | Path | None = None, overrides: Sequence[str] | None = None) -> dict[str, Any]:
    """The settings of a YAML file (optional) with `key=value` overrides on top, not yet checked."""
    data = load_yaml(path) if path else {}
    return apply_overrides(data, overrides or [])


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] | None = None) -> T:
    """The dataclass `cls` from a YAML file (optional) with `key=value` overrides on top."""
    return from_mapping(cls, load_mapping(path, overrides))


def to_mapping(config: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML-ready values (for recording what a run used)."""
    return dataclasses.asdict(config)
