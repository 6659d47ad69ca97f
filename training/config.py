"""Configuration dataclasses from YAML files or mappings, with unknown keys rejected.

Every training entry point takes one documented dataclass. `from_mapping` builds it (recursing into
nested dataclass fields and lists of them) and refuses keys the dataclass does not declare, so a
typo in a YAML file is an error instead of a silently ignored setting (nanoGPT, TRL).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rr_core.config import reject_unknown_keys

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or mapping that names unknown keys or has values of the wrong shape."""


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass inside `X`, `X | None`, or None when the annotation is not one."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _convert(annotation: Any, value: Any, where: str) -> Any:
    inner = _dataclass_of(annotation)
    if inner is not None and isinstance(value, dict):
        return from_mapping(inner, value, where)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        item = _dataclass_of(args[0]) if args else None
        if item is not None:
            value = [from_mapping(item, v, f"{where}[{i}]") if isinstance(v, dict) else v
                     for i, v in enumerate(value)]
        return tuple(value) if origin is tuple else list(value)
    return value


def from_mapping(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `data`; unknown keys raise ConfigError naming the known ones."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    reject_unknown_keys(cls, data, where or cls.__name__, ConfigError)
    hints = typing.get_type_hints(cls)
    kwargs = {key: _convert(hints[key], value, f"{where}.{key}" if where else key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
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


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply command-line `a.b.c=value` overrides (values parsed as YAML scalars) to a nested mapping."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = yaml.safe_load(raw)
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """The dataclass `cls` from a YAML file (optional) with `key=value` overrides on top."""
    data = load_yaml(path) if path else {}
    return from_mapping(cls, apply_overrides(data, overrides or []))


def to_mapping(config: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML-ready values (for recording what a run used)."""
    return dataclasses.asdict(config)
