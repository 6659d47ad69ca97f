"""The content-addressed image store: layout, dedup, hash validation, size cap, full disk, GC grace."""

from __future__ import annotations

import errno
import hashlib
import os
import time

import pytest
from PIL import Image as PILImage

from rr_core.errors import InvalidImage
from storage.errors import ImageNotFound, ImageTooLarge, InvalidImageHash, StorageFull
from storage.images import ImageStore, encode_png


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_layout_and_dedup(tmp_path, make_image):
    store = ImageStore(tmp_path)
    image = make_image(1, size=16)
    first, second = store.put(image), store.put(image.copy())
    sha = hashlib.sha256(encode_png(image)).hexdigest()
    assert first == second and first.sha256 == sha
    assert (first.width, first.height, first.format) == (16, 16, "PNG")
    assert _files(tmp_path) == [f"{sha[:2]}/{sha[2:4]}/{sha}.png"]
    assert list(store.open(sha).getdata()) == list(image.getdata())
    assert store.put(make_image(2)).sha256 != sha


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "a" * 63, "g" * 64, "/" + "a" * 63, "", None,
                                 "a" * 64 + "\n"])
def test_only_hex_hashes_reach_the_filesystem(tmp_path, bad):
    store = ImageStore(tmp_path)
    with pytest.raises(InvalidImageHash):
        store.path(bad)
    with pytest.raises(InvalidImageHash):
        store.open(bad)


def test_missing_file_is_a_specific_error(tmp_path):
    with pytest.raises(ImageNotFound):
        ImageStore(tmp_path).open("ab" * 32)


def test_size_cap(tmp_path, make_image):
    store = ImageStore(tmp_path, max_bytes=1000)
    with pytest.raises(ImageTooLarge, match="limit") as caught:
        store.put(make_image(3, size=64))  # random pixels: ~12 kB of PNG
    assert isinstance(caught.value, InvalidImage)
    assert _files(tmp_path) == []


def test_full_disk_leaves_no_partial_file(tmp_path, make_image, monkeypatch):
    store = ImageStore(tmp_path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StorageFull, match="disk is full") as caught:
        store.put(make_image(4))
    assert caught.value.errno == errno.ENOSPC
    assert _files(tmp_path) == []


def test_modes_are_normalised(tmp_path):
    store = ImageStore(tmp_path)
    palette = PILImage.new("P", (4, 4))
    stored = store.put(palette)
    assert store.open(stored.sha256).mode == "RGB"
    cmyk = store.put(PILImage.new("CMYK", (4, 4)))
    assert store.open(cmyk.sha256).mode == "RGB"


def test_gc_spares_referenced_and_young_files(tmp_path, make_image):
    store = ImageStore(tmp_path)
    old_kept, old_orphan, young_orphan = (store.put(make_image(i)).sha256 for i in (10, 11, 12))
    long_ago = time.time() - 7200
    for sha in (old_kept, old_orphan):
        os.utime(store.path(sha), (long_ago, long_ago))
    stale_temp = store.path(old_kept).parent / ".tmp-crashed"
    stale_temp.write_bytes(b"partial")
    os.utime(stale_temp, (long_ago, long_ago))
    assert store.collect_garbage({old_kept}, grace_s=3600) == [old_orphan]
    assert store.exists(old_kept) and store.exists(young_orphan) and not store.exists(old_orphan)
    assert not stale_temp.exists()


def test_put_refreshes_age_of_existing_file(tmp_path, make_image):
    """A round that reuses an old unreferenced file must not lose it to a GC running before its commit."""
    store = ImageStore(tmp_path)
    image = make_image(20)
    sha = store.put(image).sha256
    os.utime(store.path(sha), (time.time() - 7200,) * 2)
    store.put(image)
    assert store.collect_garbage(set(), grace_s=3600) == []
