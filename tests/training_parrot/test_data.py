"""Readers: a small fixture in each published layout normalizes, including every label spelling."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rr_core.critique import Preference
from rr_core.rubric import Task
from training.data import DataSource, parse_label, read_all, read_pairs
from training.data.base import MONTAGE_GAP


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


RED, BLUE, GREEN = png((255, 0, 0)), png((0, 0, 255)), png((0, 255, 0))


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.mark.parametrize("spelling, expected", [
    ("a", "A"), ("A", "A"), ("left", "A"), ("leftvote", "A"), ("A>B", "A"), ("a > b", "A"), ("Image A", "A"),
    ("b", "B"), ("right", "B"), ("rightvote", "B"), ("B>A", "B"), ("tie", "tie"), ("tievote", "tie"),
    ("A=B", "tie"), ("bothbad_vote", "tie"), ("maybe", None), ("", None), (None, None), (True, None),
])
def test_every_label_spelling(spelling, expected):
    label = parse_label(spelling)
    assert (label.value if label else None) == expected


def test_genai_bench_generation_parquet_counts_unknown_labels(tmp_path):
    rows = [{"prompt": "a red square", "left_model": "m1", "left_image": {"bytes": RED, "path": None},
             "right_model": "m2", "right_image": {"bytes": BLUE, "path": None}, "vote_type": vote}
            for vote in ("leftvote", "rightvote", "tievote", "bothbad_vote", "weirdvote")]
    pairs, report = read_pairs(DataSource("genai-bench-t2i", write_parquet(tmp_path / "g.parquet", rows)))
    assert [p.label for p in pairs] == [Preference.A, Preference.B, Preference.TIE, Preference.TIE]
    assert report.unknown_labels == {"weirdvote": 1} and report.rows == 5 and report.pairs == 4
    assert pairs[0].task is Task.T2I and pairs[0].provenance["left_model"] == "m1"
    image_a, image_b, source = pairs[0].open()
    assert image_a.getpixel((0, 0)) == (255, 0, 0) and image_b.getpixel((0, 0)) == (0, 0, 255) and source is None


def test_genai_bench_edition_has_source_image(tmp_path):
    rows = [{"source_prompt": "a dog", "target_prompt": "a cat", "instruct_prompt": "turn the dog into a cat",
             "source_image": {"bytes": GREEN, "path": None}, "left_model": "x",
             "left_output_image": {"bytes": RED, "path": None}, "right_model": "y",
             "right_output_image": {"bytes": BLUE, "path": None}, "vote_type": "rightvote"}]
    (pair,), _ = read_pairs(DataSource("genai-bench-edit", write_parquet(tmp_path / "e.parquet", rows)))
    assert pair.task is Task.EDIT and pair.label is Preference.B and pair.request == "turn the dog into a cat"
    assert pair.open()[2].getpixel((0, 0)) == (0, 255, 0)


def test_edit_row_without_source_is_counted_not_dropped(tmp_path):
    rows = [{"instruct_prompt": "x", "source_image": None, "left_output_image": {"bytes": RED, "path": None},
             "right_output_image": {"bytes": BLUE, "path": None}, "vote_type": "leftvote"}]
    pairs, report = read_pairs(DataSource("genai-bench-edit", write_parquet(tmp_path / "e.parquet", rows)))
    assert pairs == [] and report.skipped == {"missing source image": 1}


def test_hpdv2_ranks_and_one_hot_json_with_relative_paths(tmp_path):
    for name, data in (("r.png", RED), ("b.png", BLUE), ("g.png", GREEN)):
        (tmp_path / name).write_bytes(data)
    test_split = [{"prompt": "three shapes", "image_path": ["r.png", "b.png", "g.png"], "rank": [2, 1, 2]}]
    train_split = [{"prompt": "a red shape", "image_path": ["r.png", "b.png"], "human_preference": [1, 0],
                    "user_hash": "u1"}]
    (tmp_path / "test.json").write_text(json.dumps(test_split))
    (tmp_path / "train.json").write_text(json.dumps(train_split))
    ranked, _ = read_pairs(DataSource("hpdv2", str(tmp_path / "test.json")))
    assert [(p.pair_id, p.label) for p in ranked] == [
        ("0:0-1", Preference.B), ("0:0-2", Preference.TIE), ("0:1-2", Preference.A)]
    assert ranked[0].image_a.endswith("r.png")
    (one_hot,), _ = read_pairs(DataSource("hpdv2", str(tmp_path / "train.json")))
    assert one_hot.label is Preference.A and one_hot.provenance["user_hash"] == "u1"


def test_pickapic_labels_and_unlabelled_rows(tmp_path):
    rows = [{"caption": "a cat", "jpg_0": RED, "jpg_1": BLUE, "label_0": l0, "label_1": l1, "has_label": has,
             "ranking_id": i, "model_0": "sd", "model_1": "sdxl"}
            for i, (l0, l1, has) in enumerate([(1.0, 0.0, True), (0.0, 1.0, True), (0.5, 0.5, True), (0, 0, False)])]
    pairs, report = read_pairs(DataSource("pickapic", write_parquet(tmp_path / "p.parquet", rows)))
    assert [p.label for p in pairs] == [Preference.A, Preference.B, Preference.TIE]
    assert report.skipped == {"has_label is false": 1}


def test_imagerewarddb_pairs_from_ranks_within_a_prompt(tmp_path):
    rows = [{"prompt_id": pid, "prompt": f"prompt {pid}", "image": {"bytes": img, "path": None}, "rank": rank}
            for pid, img, rank in [("p1", RED, 1), ("p1", BLUE, 3), ("p1", GREEN, 1), ("p2", RED, 2), ("p2", BLUE, 1)]]
    pairs, report = read_pairs(DataSource("imagerewarddb", write_parquet(tmp_path / "i.parquet", rows)))
    assert {p.pair_id: p.label for p in pairs} == {
        "p1:0-1": Preference.A, "p1:0-2": Preference.TIE, "p1:1-2": Preference.B, "p2:0-1": Preference.B}
    assert report.rows == 5


def test_imagerewarddb_grouped_records_as_the_publisher_writes_them(tmp_path):
    """THUDM/ImageReward's data/test.json: id, prompt, generations, ranking (lower is better)."""
    for name, data in (("r.png", RED), ("b.png", BLUE), ("g.png", GREEN)):
        (tmp_path / name).write_bytes(data)
    records = [{"id": "000864-0061", "prompt": "three shapes", "generations": ["r.png", "b.png", "g.png"],
                "ranking": [3, 1, 3]}]
    (tmp_path / "test.json").write_text(json.dumps(records))
    pairs, report = read_pairs(DataSource("imagerewarddb", str(tmp_path / "test.json")))
    assert [(p.pair_id, p.label) for p in pairs] == [
        ("000864-0061:0-1", Preference.B), ("000864-0061:0-2", Preference.TIE), ("000864-0061:1-2", Preference.A)]
    assert pairs[0].image_b.endswith("b.png") and pairs[0].request == "three shapes" and report.rows == 1


def test_mmrb2_t2i_and_edit(tmp_path):
    rows = [{"pair_id": "m1", "prompt_text": "a fox", "prompt_images": [], "response_a_text": "",
             "response_a_images": [{"bytes": RED, "path": None}], "response_b_text": "",
             "response_b_images": [{"bytes": BLUE, "path": None}], "chosen": "B", "prompt_source": "s"}]
    (pair,), _ = read_pairs(DataSource("mmrb2-t2i", write_parquet(tmp_path / "t.parquet", rows)))
    assert pair.label is Preference.B and pair.pair_id == "m1" and pair.source_image is None
    rows[0]["prompt_images"] = [{"bytes": GREEN, "path": None}]
    rows[0]["chosen"] = "A"
    (edit,), _ = read_pairs(DataSource("mmrb2-edit", write_parquet(tmp_path / "e.parquet", rows)))
    assert edit.task is Task.EDIT and edit.label is Preference.A and edit.source_image == GREEN
    assert edit.extra_sources == []
    rows[0]["prompt_images"] = [{"bytes": GREEN, "path": None}, {"bytes": RED, "path": None}]
    (two,), _ = read_pairs(DataSource("mmrb2-edit", write_parquet(tmp_path / "e2.parquet", rows)))
    assert two.source_image == GREEN and two.extra_sources == [RED]


def test_editreward_bench_rankings_and_dimension_labels(tmp_path):
    rows = [{"id": f"e{i}", "instruction": "add a hat", "source_image": {"bytes": GREEN, "path": None},
             "candidate_1": {"bytes": RED, "path": None}, "candidate_2": {"bytes": BLUE, "path": None},
             "ranking": ranking, "instruction_following_ranking": "A>B"}
            for i, ranking in enumerate(["A>B", "B>A", "A=B", "A>>B"])]
    pairs, report = read_pairs(DataSource("editreward-bench", write_parquet(tmp_path / "r.parquet", rows)))
    assert [p.label for p in pairs] == [Preference.A, Preference.B, Preference.TIE]
    assert report.unknown_labels == {"A>>B": 1}
    assert pairs[0].dimension_labels == {"text_faithfulness": Preference.A}


def test_editreward_bench_numeric_dimension_scores_label_the_reference_aspects(tmp_path):
    """instruction_following_1/2 and visual_quality_1/2 (what the reference compares) become labels."""
    row = {"id": "e1", "instruction": "add a hat", "source_image": {"bytes": GREEN, "path": None},
           "candidate_1": {"bytes": RED, "path": None}, "candidate_2": {"bytes": BLUE, "path": None},
           "ranking": "A>B", "instruction_following_1": 4, "instruction_following_2": 2,
           "visual_quality_1": 3, "visual_quality_2": 3.5}
    (pair,), _ = read_pairs(DataSource("editreward-bench", write_parquet(tmp_path / "r.parquet", [row])))
    assert pair.dimension_labels == {"text_faithfulness": Preference.A, "visual_quality": Preference.B}


def test_editreward_bench_released_rows_of_3_and_4_candidate_groups(tmp_path):
    """The released 3pair/4pair files hold one comparison per row: candidate_1/2 are the letters of
    comparison_type, the ranking names letters ("C>A"), and the id prefix names the group."""
    image = {"bytes": RED, "path": None}
    rows = [{"id": f"g7_{n}", "dataset": "3pair", "instruction": "add a hat", "comparison_type": kind,
             "source_image": {"bytes": GREEN, "path": None}, "candidate_1": image,
             "candidate_2": {"bytes": BLUE, "path": None}, "ranking": ranking, "model_1": "m1", "model_2": "m2"}
            for n, (kind, ranking) in enumerate([("AvsB", "A>B"), ("AvsC", "C>A"), ("BvsC", "B=C"),
                                                 ("BvsD", "D>B"), ("AvsC", "A>B")])]
    pairs, report = read_pairs(DataSource("editreward-bench", write_parquet(tmp_path / "r.parquet", rows)))
    assert [(p.pair_id, p.label) for p in pairs] == [
        ("g7_0", Preference.A), ("g7_1", Preference.B), ("g7_2", Preference.TIE), ("g7_3", Preference.B)]
    assert report.unknown_labels == {"A>B": 1}  # a ranking of letters the row does not compare
    assert pairs[1].provenance["group"] == "g7" and pairs[1].provenance["positions"] == ["A", "C"]
    assert pairs[1].provenance["dataset"] == "3pair" and pairs[1].open()[2].getpixel((0, 0)) == (0, 255, 0)


@pytest.mark.parametrize("ranking, expected", [
    ("B>A=C>D", {"A-B": "B", "A-C": "tie", "A-D": "A", "B-C": "A", "B-D": "A", "C-D": "A"}),
    ("D>C>B>A", {"A-B": "B", "A-C": "B", "A-D": "B", "B-C": "B", "B-D": "B", "C-D": "B"}),
])
def test_editreward_bench_whole_group_rows_expand_to_every_pair(tmp_path, ranking, expected):
    colours = [RED, BLUE, GREEN, png((9, 9, 9))]
    row = {"id": "grp1", "instruction": "make it night", "source_image": {"bytes": GREEN, "path": None},
           "ranking": ranking, **{f"candidate_{n + 1}": {"bytes": c, "path": None} for n, c in enumerate(colours)}}
    pairs, report = read_pairs(DataSource("editreward-bench", write_parquet(tmp_path / "g.parquet", [row])))
    assert {p.pair_id.split(":")[1]: p.label.value for p in pairs} == expected and report.rows == 1
    first = pairs[0]
    assert first.provenance["group"] == "grp1" and first.provenance["positions"] == ["A", "B"]
    assert first.provenance["n_candidates"] == 4 and first.open()[1].getpixel((0, 0)) == (0, 0, 255)


def test_editreward_bench_three_candidate_group_with_unranked_candidate_is_counted(tmp_path):
    row = {"id": "g", "instruction": "x", "source_image": {"bytes": GREEN, "path": None}, "ranking": "A>B",
           **{f"candidate_{n}": {"bytes": RED, "path": None} for n in (1, 2, 3)}}
    pairs, report = read_pairs(DataSource("editreward-bench", write_parquet(tmp_path / "g.parquet", [row])))
    assert pairs == [] and report.unknown_labels == {"A>B": 1}


def test_hpdv2_train_split_names_images_file_path(tmp_path):
    for name, data in (("r.png", RED), ("b.png", BLUE)):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "train.json").write_text(json.dumps([{"prompt": "a red shape", "file_path": ["r.png", "b.png"],
                                                      "human_preference": [0, 1]}]))
    (pair,), _ = read_pairs(DataSource("hpdv2", str(tmp_path / "train.json")))
    assert pair.label is Preference.B and pair.open()[1].getpixel((0, 0)) == (0, 0, 255)


def test_storage_export_jsonl_with_base64_and_parquet_with_json_provenance(tmp_path):
    import base64

    record = {"pair_id": "3-7", "task": "t2i", "request": "two blue circles", "prompt_a": "x", "prompt_b": "y",
              "source_image": None, "image_a": base64.b64encode(RED).decode(), "image_b": str(tmp_path / "b.png"),
              "preference": "A", "agreement": 1.0, "n_judgements": 2, "provenance": {"session_id": 1}}
    (tmp_path / "b.png").write_bytes(BLUE)
    (tmp_path / "pairs.jsonl").write_text(json.dumps(record) + "\n" + json.dumps({**record, "pair_id": "4-8",
                                                                                  "preference": "?"}) + "\n")
    pairs, report = read_pairs(DataSource("storage", str(tmp_path / "pairs.jsonl")))
    assert len(pairs) == 1 and report.unknown_labels == {"?": 1}
    assert pairs[0].open()[0].getpixel((0, 0)) == (255, 0, 0) and pairs[0].provenance["session_id"] == 1
    parquet = write_parquet(tmp_path / "pairs.parquet", [{**record, "image_a": RED, "image_b": BLUE,
                                                          "provenance": json.dumps({"session_id": 2}),
                                                          "rationales": json.dumps({"A": [], "B": []})}])
    (pair,), _ = read_pairs(DataSource("storage", parquet))
    assert pair.provenance["session_id"] == 2 and pair.provenance["rationales"] == {"A": [], "B": []}


def test_read_all_prefixes_ids_and_rejects_unknown_formats(tmp_path):
    rows = [{"prompt": "p", "left_image": {"bytes": RED, "path": None}, "right_image": {"bytes": BLUE, "path": None},
             "vote_type": "leftvote"}]
    path = write_parquet(tmp_path / "g.parquet", rows)
    pairs, reports = read_all([DataSource("genai-bench-t2i", path, name="one"), DataSource("genai-bench-t2i", path)])
    assert [p.pair_id for p in pairs] == ["one/0", "genai-bench-t2i/0"] and len(reports) == 2
    with pytest.raises(ValueError, match="duplicate pair ids"):
        read_all([DataSource("genai-bench-t2i", path), DataSource("genai-bench-t2i", path)])
    with pytest.raises(ValueError, match="unknown data format"):
        DataSource("laion", path)


def test_mmrb2_as_the_publisher_builds_it(tmp_path):
    """facebookresearch/MMRB2 benchmark/t2i.json and edit.json: {"pairs": [...]}, content lists, paths."""
    for name, data in (("images/a.jpg", RED), ("images/b.jpg", BLUE), ("input_images/s.jpg", GREEN),
                       ("input_images/t.jpg", GREEN)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)

    def pair(pair_id, prompt_images, chosen, outputs=("images/a.jpg", "images/b.jpg")):
        return {"id": pair_id, "chosen": chosen, "human_annotations": [6, 5, 6], "prompt_source": "emu-edit",
                "prompt_metadata": {"id": 7}, "prompt_content": [["image", p] for p in prompt_images]
                + [["text", "Add toothpaste to the counter"]],
                "response_a": {"model_name": "flux-kontext", "response_content": [["image", outputs[0]]]},
                "response_b": {"model_name": "gpt-image-1", "response_content": [["image", outputs[1]]]}}

    edits = {"pairs": [pair("e1", ["input_images/s.jpg"], "B"),
                       pair("e2", ["input_images/s.jpg", "input_images/t.jpg"], "A")]}
    (tmp_path / "edit.json").write_text(json.dumps(edits))
    pairs, report = read_pairs(DataSource("mmrb2-edit", str(tmp_path / "edit.json")))
    assert [(p.pair_id, p.label, p.task) for p in pairs] == [("e1", Preference.B, Task.EDIT),
                                                             ("e2", Preference.A, Task.EDIT)]
    assert pairs[0].source_image.endswith("input_images/s.jpg") and pairs[0].image_a.endswith("images/a.jpg")
    assert pairs[0].request == "Add toothpaste to the counter"
    assert pairs[0].provenance["model_a"] == "flux-kontext" and pairs[0].provenance["human_annotations"] == [6, 5, 6]
    assert report.rows == 2 and sum(report.skipped.values()) == 0
    # An edit with two input images keeps both; the critic sees them side by side in one source picture.
    several = pairs[1]
    assert several.source_image.endswith("input_images/s.jpg") and len(several.extra_sources) == 1
    assert several.extra_sources[0].endswith("input_images/t.jpg")
    _, _, montage = several.open()
    one = Image.open(tmp_path / "input_images/s.jpg")
    assert montage.size == (2 * one.width + MONTAGE_GAP, one.height)
    assert pairs[0].open()[2].size == one.size  # one source: the image itself

    t2i = {"pairs": [pair("t1", [], "A")]}
    (tmp_path / "t2i.json").write_text(json.dumps(t2i))
    (only,), _ = read_pairs(DataSource("mmrb2-t2i", str(tmp_path / "t2i.json")))
    assert only.label is Preference.A and only.source_image is None and only.task is Task.T2I


def test_image_references_follow_the_one_reader_rule(tmp_path):
    """Data URLs, base64 of any image format, files whose names are valid base64, and missing files."""
    import base64

    from training.data import image_data

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(buffer, format="WEBP")
    webp = buffer.getvalue()
    (tmp_path / "cafe").write_bytes(RED)  # a file name that is valid base64 too
    assert image_data("data:image/png;base64," + base64.b64encode(RED).decode(), tmp_path) == RED
    assert image_data(base64.b64encode(webp).decode(), tmp_path) == webp
    assert image_data("cafe", tmp_path) == str(tmp_path / "cafe")
    assert image_data("later.png", tmp_path) == str(tmp_path / "later.png")
    assert image_data([{"bytes": BLUE, "path": None}], tmp_path) == BLUE
    assert image_data({"bytes": None, "path": None}, tmp_path) is None
    assert image_data(Image.new("RGB", (4, 4)), tmp_path).startswith(b"\x89PNG")


def test_one_reader_module_per_publisher_behind_the_old_imports():
    """training.data is a package: a module per publisher, a shared base, and the old names importable."""
    import importlib

    import training.data as data
    from training.data import FORMATS, READERS, DataSource, PreferencePair, image_data, read_rows  # noqa: F401

    assert set(READERS) == set(FORMATS)
    modules = {getattr(reader, "func", reader).__module__ for reader in READERS.values()}
    assert modules == {f"training.data.{name}" for name in
                       ("storage", "hpdv2", "pickapic", "imagerewarddb", "genai_bench", "mmrb2", "editreward_bench")}
    assert importlib.import_module("training.data.base").PreferencePair is data.PreferencePair
