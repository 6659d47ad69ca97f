"""Every export format, read back field by field (images compared pixel by pixel), with its filters."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from rr_core.images import prepare_for_critic
from rr_core.parser import parse_critique
from rr_core.prompts import build_pointwise
from rr_core.reward import RewardSpec
from rr_core.rubric import Task
from storage import export
from storage import repository as repo
from storage.db import write_transaction
from storage.export import ExportFilters
from storage.export_files import ExportImages
from storage.models import CritiqueRow, PairSource


def _pixels(value, root: Path | None = None) -> list:
    """Pixels of an image given as PNG bytes, base64 text, or (with `root`, the export's folder) a
    path relative to the export file."""
    if isinstance(value, str) and root is None:
        value = base64.b64decode(value)
    elif isinstance(value, str):
        assert not Path(value).is_absolute(), f"an export holds an absolute path: {value}"
        value = root / value
    with PILImage.open(io.BytesIO(value) if isinstance(value, bytes) else value) as image:
        return list(image.convert("RGB").getdata())


def _messages(task: str, request: str, image, source=None) -> list[dict]:
    """The critic prompt the application layer stores with a critique."""
    return build_pointwise(task, request, image, source_image=source).to_sharegpt()["messages"]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def data(factory, store, make_image, make_critique, new_user_id):
    """t2i session: rounds r0, r1, r2; edit session: e0, e1.
    (r0, r1): judged A, A (annotators 1, 2) and B (annotator 3): A with agreement 2/3.
    (r1, r2): derived only, B.   (e0, e1): one human tie.
    Critiques: r0 accepted, r1 physical_quality corrected to 1.5, r2 rejected, e0 accepted, e1 none."""
    with write_transaction(factory) as s:
        owner = repo.get_or_create_user(s, new_user_id("owner")).id
        ann = [repo.get_or_create_user(s, new_user_id(f"ann{i}"), role="annotator").id for i in (1, 2, 3)]
        t2i = repo.create_session(s, owner_id=owner, task="t2i", request="a lighthouse at dusk").id
        edit = repo.create_session(s, owner_id=owner, task="edit", request="add a red scarf").id
    images = {name: make_image(1000 + i, size=32) for i, name in enumerate(["r0", "r1", "r2", "e0", "e1"])}
    source = make_image(2000, size=40)
    ids, critiques = {}, {}
    with write_transaction(factory) as s:
        for i, name in enumerate(["r0", "r1", "r2"]):
            critiques[name] = make_critique("t2i", seed=i)
            ids[name] = repo.record_candidate(s, store=store, session_id=t2i, owner_id=owner, request="a lighthouse at dusk",
                                          used_prompt=f"a lighthouse at dusk, take {i}", image=images[name],
                                          critique=critiques[name], round_index=0, candidate_index=i, seed=i,
                                          prompt_messages=_messages("t2i", "a lighthouse at dusk", images[name])).id
        for i, name in enumerate(["e0", "e1"]):
            critiques[name] = make_critique("edit", seed=10 + i)
            ids[name] = repo.record_candidate(s, store=store, session_id=edit, owner_id=owner, request="add a red scarf",
                                          image=images[name], critique=critiques[name], source_image=source,
                                          round_index=0, candidate_index=i,
                                          prompt_messages=_messages("edit", "add a red scarf", images[name],
                                                                    source)).id
    with write_transaction(factory) as s:
        r0, r1, r2, e0, e1 = (ids[n] for n in ["r0", "r1", "r2", "e0", "e1"])
        repo.add_pair_judgement(s, candidate_a_id=r0, candidate_b_id=r1, preference="A", judge_id=ann[0])
        repo.add_pair_judgement(s, candidate_a_id=r1, candidate_b_id=r0, preference="B", judge_id=ann[1])
        repo.add_pair_judgement(s, candidate_a_id=r0, candidate_b_id=r1, preference="B", judge_id=ann[2])
        repo.add_pair_judgement(s, candidate_a_id=r2, candidate_b_id=r1, preference="A", judge_id=None,
                                source=PairSource.DERIVED, derived_from="tiny-critic", acting_user_id=owner)
        repo.add_pair_judgement(s, candidate_a_id=e0, candidate_b_id=e1, preference="tie", judge_id=ann[1])
        cid = {n: s.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == ids[n])) for n in ids}
        for dim in ("text_faithfulness", "physical_quality"):
            repo.add_annotation(s, critique_id=cid["r0"], annotator_id=ann[0], dimension=dim, verdict="accept")
        repo.add_annotation(s, critique_id=cid["r1"], annotator_id=ann[1], dimension="text_faithfulness",
                            verdict="accept")
        repo.add_annotation(s, critique_id=cid["r1"], annotator_id=ann[1], dimension="physical_quality",
                            verdict="correct", corrected_score=1.5, comment="melted railing")
        repo.add_annotation(s, critique_id=cid["r2"], annotator_id=ann[0], dimension="physical_quality",
                            verdict="reject")
        repo.add_annotation(s, critique_id=cid["e0"], annotator_id=ann[2], dimension="image_faithfulness",
                            verdict="accept")
    return {"ids": ids, "cid": cid, "ann": ann, "images": images, "source": source, "critiques": critiques, "store": store}


def test_pairs_jsonl_field_by_field(factory, data, tmp_path):
    ids, images = data["ids"], data["images"]
    with factory() as s:
        assert export.export_to_file(s, data["store"], "pairs", tmp_path / "p.jsonl") == 3
    records = {r["pair_id"]: r for r in _read_jsonl(tmp_path / "p.jsonl")}
    main = records[f"{ids['r0']}-{ids['r1']}"]
    assert (main["task"], main["request"], main["preference"], main["n_judgements"]) == (
        "t2i", "a lighthouse at dusk", "A", 3)
    assert main["agreement"] == pytest.approx(2 / 3)
    assert (main["prompt_a"], main["prompt_b"], main["source_image"]) == (
        "a lighthouse at dusk, take 0", "a lighthouse at dusk, take 1", None)
    assert _pixels(main["image_a"], tmp_path) == list(images["r0"].getdata())
    assert _pixels(main["image_b"], tmp_path) == list(images["r1"].getdata())
    prov = main["provenance"]
    assert (prov["candidate_a_id"], prov["candidate_b_id"], prov["votes"]) == (ids["r0"], ids["r1"], {"A": 2, "B": 1})
    assert [j["judge_id"] for j in prov["judgements"]] == data["ann"]
    assert [j["preference"] for j in prov["judgements"]] == ["A", "A", "B"]  # oriented to this record's A
    assert (prov["seed_a"], prov["seed_b"]) == (0, 1)
    derived = records[f"{ids['r1']}-{ids['r2']}"]
    assert (derived["preference"], derived["agreement"]) == ("B", 1.0)  # judged as (r2, r1) -> A, stored as r1-r2
    assert derived["provenance"]["judgements"][0]["source"] == "derived"
    tie = records[f"{ids['e0']}-{ids['e1']}"]
    assert tie["preference"] == "tie" and _pixels(tie["source_image"], tmp_path) == list(data["source"].getdata())


def test_pairs_parquet_with_embedded_images_matches_jsonl(factory, data, tmp_path):
    with factory() as s:
        export.export_to_file(s, data["store"], "pairs", tmp_path / "p.jsonl", embed_images=True)
        export.export_to_file(s, data["store"], "pairs", tmp_path / "p.parquet", parquet=True, embed_images=True)
    from_json = {r["pair_id"]: r for r in _read_jsonl(tmp_path / "p.jsonl")}
    from_parquet = {r["pair_id"]: r for r in pq.read_table(tmp_path / "p.parquet").to_pylist()}
    assert from_json.keys() == from_parquet.keys()
    for key, record in from_parquet.items():
        assert isinstance(record["image_a"], bytes)
        assert _pixels(record["image_a"]) == _pixels(from_json[key]["image_a"])
        assert record["image_b"] == base64.b64decode(from_json[key]["image_b"])
        assert json.loads(record["provenance"]) == from_json[key]["provenance"]
        for field in ("task", "request", "preference", "agreement", "n_judgements", "prompt_a", "prompt_b"):
            assert record[field] == from_json[key][field]


def test_pair_filters(factory, data):
    ids, ann = data["ids"], data["ann"]
    store = data["store"]

    def pair_ids(**kw):
        with factory() as s:
            return {r["pair_id"]: r["preference"] for r in export.export_pairs(s, ExportImages(store, embed=True), ExportFilters(**kw))}

    main, derived, tie = (f"{ids['r0']}-{ids['r1']}", f"{ids['r1']}-{ids['r2']}", f"{ids['e0']}-{ids['e1']}")
    assert pair_ids(min_agreement=0.7) == {derived: "B", tie: "tie"}
    assert pair_ids(task="edit") == {tie: "tie"}
    assert pair_ids(annotator_id=ann[2]) == {main: "B"}
    assert pair_ids(since=datetime.now(timezone.utc) + timedelta(days=1)) == {}
    assert set(pair_ids(until=datetime.now(timezone.utc) + timedelta(days=1))) == {main, derived, tie}
    with pytest.raises(ValueError):
        ExportFilters(min_agreement=1.5)


def test_dpo(factory, data, tmp_path):
    images = data["images"]
    with factory() as s:
        assert export.export_to_file(s, data["store"], "dpo", tmp_path / "d.parquet", parquet=True,
                                     embed_images=True) == 2
        assert export.export_to_file(s, data["store"], "dpo", tmp_path / "t.jsonl", include_ties=True) == 3
    rows = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert sorted(r["label_0"] for r in rows) == [0.0, 1.0]
    first = next(r for r in rows if _pixels(r["jpg_0"]) == list(images["r0"].getdata()))
    assert first["caption"] == "a lighthouse at dusk" and _pixels(first["jpg_1"]) == list(images["r1"].getdata())
    assert sorted(r["label_0"] for r in _read_jsonl(tmp_path / "t.jsonl")) == [0.0, 0.5, 1.0]
    assert set(rows[0]) == {"caption", "jpg_0", "jpg_1", "label_0", "label_1"}
    assert all(r["label_0"] + r["label_1"] == 1.0 for r in rows)


def test_sft_sharegpt(factory, data, tmp_path):
    cid, critiques, images = data["cid"], data["critiques"], data["images"]
    out = tmp_path / "sft.jsonl"
    with factory() as s:
        assert export.export_to_file(s, data["store"], "sft", out) == 3  # r0, r1, e0 (r2 rejected, e1 unseen)
    records = {r["critique_id"]: r for r in _read_jsonl(out)}
    assert set(records) == {cid["r0"], cid["r1"], cid["e0"]}
    for record in records.values():
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert record["messages"][1]["content"].count("<image>") == len(record["images"])
        assert all(not Path(p).is_absolute() and p.startswith("sft.jsonl.images/") and (tmp_path / p).is_file()
                   for p in record["images"])
    for name in ("r0", "r1", "e0"):  # critiques decoded under the grammar stay marked as such
        assert records[cid[name]]["constrained"] is critiques[name].constrained
    assert records[cid["r1"]]["corrected"] and not records[cid["r0"]]["corrected"]
    accepted = records[cid["r0"]]
    assert accepted["messages"][2]["content"] == critiques["r0"].raw_text
    assert "a lighthouse at dusk" in accepted["messages"][1]["content"]
    assert _pixels(accepted["images"][0], tmp_path) == list(prepare_for_critic(images["r0"]).getdata())
    corrected = parse_critique(records[cid["r1"]]["messages"][2]["content"], Task.T2I)
    assert corrected.score("physical_quality") == 1.5
    assert corrected.score("text_faithfulness") == critiques["r1"].score("text_faithfulness")
    assert corrected.refined_request == critiques["r1"].refined_request
    edit = records[cid["e0"]]
    assert len(edit["images"]) == 2
    assert _pixels(edit["images"][0], tmp_path) == list(prepare_for_critic(data["source"]).getdata())  # source 1st
    assert _pixels(edit["images"][1], tmp_path) == list(images["e0"].getdata())
    with factory() as s:
        embedded = list(export.export_sft(s, ExportImages(data["store"], embed=True),
                                          ExportFilters(task="t2i", annotator_id=data["ann"][1])))
    assert [r["critique_id"] for r in embedded] == [cid["r1"]]
    assert _pixels(embedded[0]["images"][0]) == list(images["r1"].getdata())


def test_parrot(factory, data, tmp_path):
    ids, cid, critiques = data["ids"], data["cid"], data["critiques"]
    with factory() as s:
        assert export.export_to_file(s, data["store"], "parrot", tmp_path / "p.parquet", parquet=True) == 2
    records = {r["pair_id"]: r for r in pq.read_table(tmp_path / "p.parquet").to_pylist()}
    main = records[f"{ids['r0']}-{ids['r1']}"]
    rationales = json.loads(main["rationales"])
    assert main["preference"] == "A" and main["request"] == "a lighthouse at dusk"
    [a], [b] = rationales["A"], rationales["B"]
    assert (a["critique_id"], a["corrected"], a["text"]) == (cid["r0"], False, critiques["r0"].raw_text)
    assert (b["critique_id"], b["corrected"], b["annotators"]) == (cid["r1"], True, [data["ann"][1]])
    assert (a["constrained"], b["constrained"]) == (critiques["r0"].constrained, critiques["r1"].constrained)
    assert b["critique"]["scores"]["physical_quality"]["score"] == 1.5
    # Storage does not score: a corrected critique has no reward; the original keeps the stored one.
    assert b["critique"]["reward"] is None and a["critique"]["reward"] == critiques["r0"].reward
    # No reward spec was stored with these rows: the rule is their reward dimensions, equal weights.
    assert RewardSpec.from_dict(a["reward_spec"]) == RewardSpec(dimensions=critiques["r0"].reward_dimensions)
    assert parse_critique(b["text"], "t2i").score("physical_quality") == 1.5
    tie = records[f"{ids['e0']}-{ids['e1']}"]
    assert [r["critique_id"] for r in json.loads(tie["rationales"])["A"]] == [cid["e0"]]
    assert json.loads(tie["rationales"])["B"] == []
    assert _pixels(tie["source_image"], tmp_path) == list(data["source"].getdata())


def test_rl_prompts(factory, data, tmp_path):
    with factory() as s:
        export.export_to_file(s, data["store"], "rl-prompts", tmp_path / "rl.jsonl", embed_images=True)
    records = _read_jsonl(tmp_path / "rl.jsonl")
    assert [(r["task"], r["prompt"]) for r in records] == [("edit", "add a red scarf"), ("t2i", "a lighthouse at dusk")]
    assert _pixels(records[0]["source_image"]) == list(data["source"].getdata())
    assert records[1]["source_image"] is None


def test_cli_and_atomic_replace(engine, data, tmp_path, monkeypatch):
    out = tmp_path / "pairs.jsonl"
    url = engine.url.render_as_string(hide_password=False)
    assert export.main(["--format", "pairs", "--out", str(out), "--database-url", url,
                        "--images-dir", str(data["store"].root), "--min-agreement", "0.9"]) == 0
    before = out.read_bytes()
    assert len(before.splitlines()) == 2

    def broken(*args, **kwargs):
        yield {"pair_id": "half"}
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(export, "export_pairs", broken)
    with pytest.raises(RuntimeError):
        export.main(["--format", "pairs", "--out", str(out), "--database-url", url,
                     "--images-dir", str(data["store"].root)])
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "pairs.jsonl.images"]  # no temp left


@pytest.mark.parametrize("embed", ["--image-paths", "--embed-images"])
def test_an_image_store_that_is_not_the_databases_is_named_not_a_traceback(engine, data, tmp_path, caplog, embed):
    """`--database-url` of another data folder with the default image store (./data/images, or the wrong
    --images-dir): a message naming the store and how to point at the right one, exit 1, nothing left."""
    url = engine.url.render_as_string(hide_password=False)
    out = tmp_path / "out" / "pairs.jsonl"
    wrong = tmp_path / "elsewhere" / "images"
    assert export.main(["--format", "pairs", "--out", str(out), "--database-url", url, "--images-dir", str(wrong),
                        embed]) == 1
    message = caplog.text
    assert f"the image store at {wrong}: no image file for " in message
    assert "--images-dir" in message and "RR_DATA_DIR" in message
    assert list((tmp_path / "out").iterdir()) == []  # no export, no temp file or folder left


def test_a_correction_turns_an_invalid_dimension_into_a_score():
    """The critic wrote "17"; the annotator's corrected 3.0 is the score. Storage does not score, so the
    reward is left to whoever reads the export (each record carries its reward spec)."""
    from rr_core.critique import ParseStatus
    from storage.models import Annotation, Verdict
    from tests.critique_texts import T2I_OK

    critique = parse_critique(T2I_OK.replace("## Score: 3.5", "## Score: 17"), Task.T2I)
    assert critique.status is ParseStatus.PARTIAL and critique.scores["text_faithfulness"].invalid
    note = Annotation(id=1, dimension="text_faithfulness", verdict=Verdict.CORRECT, corrected_score=3.0,
                      annotator_id="ann", created_at=datetime.now(timezone.utc))
    row = CritiqueRow(parsed=critique.to_dict(), raw_text=critique.raw_text, status=critique.status.value,
                      annotations=[note])
    reviewed = export.review(row).critique
    assert reviewed.score("text_faithfulness") == 3.0 and not reviewed.invalid_keys()
    assert reviewed.reward is None
