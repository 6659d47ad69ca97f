"""Training's configuration files use rr_core.config's one loader (YAML + `key=value` overrides,
nested dataclass sections, unknown keys rejected); these names stay importable from here."""

from __future__ import annotations

from rr_core.config import (
    ConfigError,
    apply_overrides,
    from_mapping,
    load_config,
    load_mapping,
    load_yaml,
    to_mapping,
)

__all__ = ["ConfigError", "apply_overrides", "from_mapping", "load_config", "load_mapping", "load_yaml", "to_mapping"]
