"""Pointwise samples from storage's SFT export are mixed with the pairwise rationales: from the config
(`pointwise_files`) or the command line (`--sft-export`), JSONL with paths or embedded PNGs, or Parquet."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image

from rr_core.critique import Preference
from rr_core.prompts import build_pointwise
from rr_core.rubric import Task
from tests.critique_texts import T2I_OK
from tests.scripted import ScriptedCritic
from tests.training_parrot.conftest import anchored_label, pair_text
from training.config import load_config
from training.parrot import __main__ as cli
from training.parrot.pipeline import PipelineConfig, run_generate
from training.parrot.records import read_jsonl
from training.parrot.synthetic import draw_circles, write_synthetic_pairs


def sft_record(image: Image.Image, stored) -> dict:
    """One record as `storage.export --format sft` writes it, with `stored` in place of the image."""
    record = build_pointwise(Task.T2I, "two green circles", image).to_sharegpt()
    return {"messages": record["messages"] + [{"role": "assistant", "content": T2I_OK}], "images": [stored],
            "critique_id": 41, "model_id": "critic", "constrained": False, "corrected": True}


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_config(tmp_path) -> str:
    data = write_synthetic_pairs(tmp_path / "data", n_pairs=4, tie_every=0)
    path = tmp_path / "parrot.yaml"
    path.write_text(yaml.safe_dump({
        "work_dir": str(tmp_path / "run"),
        "data": [{"format": "storage", "path": str(data), "name": "synthetic"}],
        "generate": {"progress": False}, "filter": {"progress": False, "repredict": False},
        "derived_pointwise": {"enabled": False}}))
    return str(path)


def test_filter_mixes_sft_exports_given_on_the_command_line(tmp_path):
    config_path = write_config(tmp_path)
    teacher = ScriptedCritic(lambda c: pair_text(Task.T2I, anchored_label(c)), tasks=("t2i",))
    run_generate(load_config(PipelineConfig, config_path), teacher=teacher)

    # Three pointwise samples in the export's layouts: a relative path, embedded base64 (JSONL), bytes (Parquet).
    image = draw_circles(2, "green", seed=5)
    export_dir = tmp_path / "export"
    (export_dir / "sft.jsonl.images").mkdir(parents=True)
    image.save(export_dir / "sft.jsonl.images" / "x.png")
    (export_dir / "sft.jsonl").write_text(
        json.dumps(sft_record(image, "sft.jsonl.images/x.png")) + "\n"
        + json.dumps(sft_record(image, base64.b64encode(png_bytes(image)).decode())) + "\n")
    pq.write_table(pa.Table.from_pylist([sft_record(image, png_bytes(image))]), export_dir / "sft.parquet")

    assert cli.main(["filter", "--config", config_path, "--sft-export", str(export_dir / "sft.jsonl"),
                     "--sft-export", str(export_dir / "sft.parquet")]) == 0
    report = json.loads((tmp_path / "run" / "filter" / "report.json").read_text())
    assert report["sft_samples"] == {"pairwise": 4, "pointwise_derived": 0, "pointwise": 3}
    samples = list(read_jsonl(tmp_path / "run" / "sft.jsonl"))
    pointwise = [s for s in samples if s["kind"] == "pointwise"]
    assert len(pointwise) == 3 and all(s["critique_id"] == 41 for s in pointwise)
    for sample in pointwise:
        (path,) = sample["images"]
        assert Image.open(path).convert("RGB").tobytes() == image.convert("RGB").tobytes()
        assert sample["messages"][-1]["content"] == T2I_OK
    pairwise = [s for s in samples if s["kind"] == "pairwise"]
    assert len(pairwise) == 4 and all(len(s["images"]) == 2 and s["pair_id"] for s in pairwise)
    assert {s["messages"][-1]["content"] for s in pairwise} <= {pair_text(Task.T2I, p) for p in Preference}


def test_run_passes_sft_exports_to_the_pipeline(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setitem(cli.PHASES, "run", lambda config: seen.update(files=config.pointwise_files) or {})
    config_path = write_config(tmp_path)
    assert cli.main(["run", "--config", config_path, "--set", "pointwise_files=[a.jsonl]",
                     "--sft-export", "b.jsonl"]) == 0
    assert seen["files"] == ["a.jsonl", "b.jsonl"]
