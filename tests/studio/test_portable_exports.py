"""Exports usable where they land: DPO carries image bytes, a moved or unpacked export still finds its
images, files are readable by the group, and TRL's form of the SFT export has its images where the
served prompt had them."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from rr_core.images import load_image
from rr_core.prompts import build_pointwise
from rr_core.rubric import Task
from storage.export_files import images_folder
from training.data import DataSource, read_pairs
from training.parrot.sft_data import _pointwise_records
from tests.studio.conftest import ScriptedModels, make_services


@pytest.fixture(scope="module")
def studio_data(tmp_path_factory):
    """A t2i and an edit session of two candidates, every critique accepted, one A pick per session."""
    root = tmp_path_factory.mktemp("portable")
    services = make_services(root, ScriptedModels())
    t2i = list(services.run_loop(None, "a red kite over a beach", {"rounds": 1, "candidates": 2}))[-1]
    source = Image.new("RGB", (48, 40), (10, 120, 200))
    edit = list(services.run_loop(None, "add a yellow hat", {"rounds": 1, "candidates": 2}, source))[-1]
    while (item := services.next_critique(None)) is not None:
        services.annotate(None, item["critique_id"], {"text_faithfulness": {"verdict": "accept"}})
    while (pair := services.next_pair(None)) is not None:
        services.pick_pair(None, pair["candidate_a"], pair["candidate_b"], "A")
    images = {c.candidate_id: c.image for view in (t2i, edit) for r in view.rounds for c in r.candidates}
    yield {"services": services, "images": images, "source": source, "root": root}
    services.engine.dispose()


def _pixels(image: Image.Image) -> list:
    return list(image.convert("RGB").getdata())


def test_dpo_export_carries_image_bytes_as_diffusion_dpo_reads_them(studio_data):
    services = studio_data["services"]
    expected = {tuple(_pixels(image)) for image in studio_data["images"].values()}
    parquet = Path(services.export(None, "dpo", parquet=True)["file"])
    rows = pq.read_table(parquet).to_pylist()
    assert len(rows) == 2
    for row in rows:  # DiffusionDPO: Image.open(io.BytesIO(example["jpg_0"]))
        for column in ("jpg_0", "jpg_1"):
            assert isinstance(row[column], bytes)
            assert tuple(_pixels(Image.open(io.BytesIO(row[column])))) in expected
    jsonl = Path(services.export(None, "dpo")["file"])
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        assert tuple(_pixels(Image.open(io.BytesIO(base64.b64decode(row["jpg_0"]))))) in expected
    assert not images_folder(jsonl).exists() and not images_folder(parquet).exists()


def test_dpo_image_paths_remain_an_opt_out(studio_data, tmp_path):
    from storage.export import main

    services = studio_data["services"]
    out = tmp_path / "dpo.parquet"
    assert main(["--format", "dpo", "--out", str(out), "--image-paths", "--images-dir", str(services.store.root),
                 "--database-url", str(services.engine.url)]) == 0
    rows = pq.read_table(out).to_pylist()
    assert all(not Path(row["jpg_0"]).is_absolute() and (out.parent / row["jpg_0"]).is_file() for row in rows)


@pytest.mark.parametrize("fmt", ["pairs", "parrot"])
def test_a_moved_export_still_finds_its_images(studio_data, tmp_path, fmt):
    services = studio_data["services"]
    out = Path(services.export(None, fmt)["file"])
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(out, moved / out.name)
    shutil.move(images_folder(out), moved / images_folder(out).name)
    text = (moved / out.name).read_text()
    assert str(services.store.root) not in text and str(out.parent) not in text
    pairs, report = read_pairs(DataSource("storage", str(moved / out.name)))
    assert len(pairs) == 2 and not report.skipped
    originals = [tuple(_pixels(image)) for image in studio_data["images"].values()]
    for pair in pairs:
        image_a, image_b, source = pair.open()
        assert tuple(_pixels(image_a)) in originals and tuple(_pixels(image_b)) in originals
        assert (source is not None) == (pair.request == "add a yellow hat")


@pytest.mark.parametrize("fmt", ["sft", "sft-trl", "rl-prompts", "pairs"])
def test_the_portable_zip_unpacks_anywhere(studio_data, tmp_path, fmt):
    services = studio_data["services"]
    result = services.export(None, fmt, portable=True)
    archive = Path(result["zip"])
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
        assert Path(result["file"]).name in names
        assert all(not name.startswith("/") and ".." not in name for name in names)
        opened.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked" / Path(result["file"]).name
    if fmt.startswith("sft"):
        samples = _pointwise_records(unpacked, tmp_path / "sft-images") if fmt == "sft" else None
        records = [json.loads(line) for line in unpacked.read_text().splitlines()]
        assert len(records) == result["count"] == 4
        for record in records:
            assert all((unpacked.parent / path).is_file() for path in record["images"])
        if samples is not None:
            assert all(Path(p).is_file() for s in samples for p in s["images"])
    elif fmt == "rl-prompts":
        from training.rl.prompts import load_prompts

        [edit] = load_prompts(unpacked, "edit")
        assert _pixels(edit.source_image) == _pixels(studio_data["source"])
    else:
        pairs, _ = read_pairs(DataSource("storage", str(unpacked)))
        assert len(pairs) == 2 and all(pair.open()[0] is not None for pair in pairs)


def _modes(result: dict) -> set[int]:
    out = Path(result["file"])
    paths = [out, *images_folder(out).rglob("*")] if images_folder(out).exists() else [out]
    if "zip" in result:
        paths.append(Path(result["zip"]))
    return {stat.S_IMODE(path.stat().st_mode) for path in paths if path.is_file()}


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o027, 0o640)])
def test_export_files_follow_the_umask(studio_data, umask, expected):
    services = studio_data["services"]
    previous = os.umask(umask)
    try:
        results = [services.export(None, "pairs", portable=True), services.export(None, "dpo", parquet=True)]
    finally:
        os.umask(previous)
    assert set().union(*map(_modes, results)) == {expected}


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
def test_trl_form_interleaves_images_where_the_served_prompt_had_them(studio_data, parquet):
    """The seam: the TRL record's user turn, images filled in from `images` in order, equals the
    conversation the critic was served (rr_core.prompts.build_pointwise), part by part."""
    services = studio_data["services"]
    out = Path(services.export(None, "sft-trl", parquet=parquet)["file"])
    if parquet:
        records = pq.read_table(out).to_pylist()
    else:
        records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4
    for record in records:
        system, user, assistant = record["messages"]
        assert [m["role"] for m in (system, user, assistant)] == ["system", "user", "assistant"]
        text = "".join(part.get("text") or "" for turn in record["messages"] for part in turn["content"])
        assert "<image>" not in text
        images = [load_image(out.parent / path) for path in record["images"]]
        request = "add a yellow hat" if len(images) == 2 else "a red kite over a beach"
        with services.sessions() as db:
            from storage.models import CritiqueRow

            round_ = db.get(CritiqueRow, record["critique_id"]).candidate
            image = services.store.open(round_.image_sha256)
            source = services.store.open(round_.source_image_sha256) if round_.source_image_sha256 else None
        served = build_pointwise(Task.EDIT if source else Task.T2I, request, image, source_image=source)
        served_user = served.to_transformers()[1]["content"]
        queue = list(images)
        filled = [{"type": "image", "image": queue.pop(0)} if part["type"] == "image" else part
                  for part in user["content"]]
        assert [part["type"] for part in filled] == [part["type"] for part in served_user]
        assert user["content"][0]["type"] == "text"  # the request comes before any image
        for mine, theirs in zip(filled, served_user):
            if mine["type"] == "text":
                assert mine["text"] == theirs["text"]
            else:
                assert _pixels(mine["image"]) == _pixels(theirs["image"])
        assert [(p["type"], p["text"]) for p in system["content"]] == [("text", served.system)]
        assert assistant["content"][0]["text"].startswith("# User Request Analysis")
