"""Building the tiny checkpoints: once, atomically, through the same from_pretrained path as real ones."""

from __future__ import annotations

import threading

from rr_core.generators.tiny import ensure_tiny_text_to_image
from rr_core.tiny_cache import build_once


def test_build_is_idempotent(tiny_cache):
    first = ensure_tiny_text_to_image(tiny_cache)
    stamp = (first / "model_index.json").stat().st_mtime_ns
    assert ensure_tiny_text_to_image(tiny_cache) == first
    assert (first / "model_index.json").stat().st_mtime_ns == stamp
    for component in ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        assert (first / component).is_dir()


def test_concurrent_builds_end_with_one_complete_folder(tmp_path):
    builds = []
    all_building = threading.Barrier(3)

    def build(folder):
        builds.append(folder)
        all_building.wait(timeout=30)  # every thread has missed the finished folder: a real race
        (folder / "weights.bin").write_bytes(b"x" * 1000)

    threads = [threading.Thread(target=build_once, args=("thing", build, tmp_path, "r1")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 3  # all raced, one won the rename
    assert (tmp_path / "thing" / "weights.bin").read_bytes() == b"x" * 1000
    assert sorted(path.name for path in tmp_path.iterdir()) == ["thing"]  # no temporary folders left


def test_a_folder_from_another_recipe_is_rebuilt(tmp_path):
    stale = tmp_path / "thing"
    stale.mkdir()
    (stale / "old.bin").write_text("old")
    path = build_once("thing", lambda folder: (folder / "new.bin").write_text("new"), tmp_path, "r1")
    assert (path / "new.bin").read_text() == "new" and not (path / "old.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"]
