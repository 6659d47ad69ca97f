"""The app clears what killed and expired exports left in its exports folder when it starts."""

from __future__ import annotations

import logging
import os
import time
from types import SimpleNamespace

from rr_core import presets
from studio.container import create_services
from tests.studio.conftest import ScriptedModels


def test_start_up_removes_killed_and_expired_exports(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RR_EXPORT_RETENTION_DAYS", "7")
    monkeypatch.setattr(presets, "resolve_preset", lambda *args, **kwargs: SimpleNamespace(critic_kind="scripted"))
    monkeypatch.setattr(presets, "Models", lambda resolved: ScriptedModels())
    exports = tmp_path / "exports"
    exports.mkdir()
    killed = exports / ".pairs-1.jsonl.k1ll3d.tmp"
    killed.write_text('{"pair_id": "half"}\n')
    expired, kept = exports / "sft-old.jsonl", exports / "sft-new.jsonl"
    for path in (expired, kept):
        path.write_text("{}\n")
    long_ago = time.time() - 8 * 86400
    os.utime(expired, (long_ago, long_ago))

    with caplog.at_level(logging.INFO, logger="storage.gc"):
        services = create_services("scripted", database_url_text=f"sqlite:///{tmp_path / 'studio.sqlite3'}")
    try:
        assert sorted(p.name for p in exports.iterdir()) == ["sft-new.jsonl"]
        assert "gc killed exports: freed 1 file(s), 20 bytes" in caplog.text
        assert "gc expired exports: freed 1 file(s), 3 bytes" in caplog.text
        assert services.exports_dir == exports
    finally:
        services.engine.dispose()
