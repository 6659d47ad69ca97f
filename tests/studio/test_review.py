"""The review views' jobs under sign-in: queue order, leases, skip / back / undo, shuffled A/B sides
with the side stored, agreement and position bias, and who may do what."""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image
from sqlalchemy import select

from storage import repository as repo
from storage.db import make_engine, scratch_postgres_database, write_transaction
from storage.images import ImageStore
from storage.migrate import upgrade_to_head
from storage.export import ExportFilters, aggregate_pairs
from storage.models import Annotation, PairJudgement, ReviewLease, CandidateRow
from studio import review as review_module
from studio.review import left_first
from studio.users import AuthSettings, RoleRequired
from studio.container import Services
from tests.studio.conftest import ScriptedModels, make_services

AUTH = "alice:pa:designer,carol:pc:annotator,dave:pd:annotator,erin:pe:admin"
ONCE = {"rounds": 1, "steps": 1}
TWO_ROUNDS = {"rounds": 2, "steps": 1, "candidates": 2, "stop_threshold": None}


def postgres_url() -> str:
    url = os.environ.get("RR_TEST_POSTGRES_URL", "").strip()
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but RR_TEST_POSTGRES_URL is not")
        pytest.skip("RR_TEST_POSTGRES_URL is not set; the PostgreSQL review tests run in CI")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def studio(request, tmp_path):
    """The services over a fresh database of each backend, with an edit session (one critique) and a
    text-to-image session of two rounds of two candidates (four critiques, six pairs) by alice."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            built = make_services(tmp_path, auth=AuthSettings.parse(AUTH))
        else:
            url = stack.enter_context(scratch_postgres_database(postgres_url(), "rr_review"))
            engine = make_engine(url)
            upgrade_to_head(engine)
            built = Services(ScriptedModels(), engine, ImageStore(tmp_path / "images"),
                             auth=AuthSettings.parse(AUTH), exports_dir=tmp_path / "exports", database_url_text=url)
        stack.callback(built.engine.dispose)
        yield from _with_sessions(built)


def _with_sessions(built):
    list(built.run_loop("alice", "make the sky purple", ONCE,
                        source_image=Image.new("RGB", (40, 32), (30, 144, 255))))
    list(built.run_loop("alice", "a red fox in the snow", TWO_ROUNDS))
    yield built


def accept_all(item: dict) -> dict:
    return {row["key"]: {"verdict": "accept"} for row in item["scores"]}


def rows(services, model):
    with services.sessions() as db:
        return list(db.scalars(select(model).order_by(model.id if hasattr(model, "id") else model.item)))


def test_a_designer_reaches_no_review_job(studio):
    for call in (lambda: studio.next_critique("alice"), lambda: studio.next_pair("alice"),
                 lambda: studio.critique_progress("alice"), lambda: studio.pair_progress("alice"),
                 lambda: studio.agreement("alice"), lambda: studio.undo_annotation("alice"),
                 lambda: studio.pick_side("alice", 1, 2, "left")):
        with pytest.raises(RoleRequired):
            call()


def test_disagreements_are_for_admins_only(studio):
    with pytest.raises(RoleRequired, match="admins"):
        studio.disagreements("carol")
    assert studio.disagreements("erin") == []


def test_two_annotators_are_never_handed_the_same_critique_at_once(studio):
    first = studio.next_critique("carol")
    second = studio.next_critique("dave")
    assert first["critique_id"] != second["critique_id"]
    with studio.sessions() as db:
        holders = {lease.item: lease.holder_id for lease in db.scalars(select(ReviewLease))}
    assert holders == {f"critique:{first['critique_id']}": "carol", f"critique:{second['critique_id']}": "dave"}


def test_a_lease_expires(studio, monkeypatch):
    first = studio.next_critique("carol")
    monkeypatch.setattr(review_module, "LEASE", timedelta(seconds=-1))  # carol's next lease is already over
    studio.next_critique("carol", exclude=[])  # re-leases the same first item, expired at once
    assert studio.next_critique("dave")["critique_id"] == first["critique_id"]


def test_fewest_judgements_first_and_never_the_same_item_twice(studio):
    everything = []
    while (item := studio.next_critique("carol")) is not None:
        everything.append(item["critique_id"])
        studio.annotate("carol", item["critique_id"], accept_all(item))
    assert len(everything) == len(set(everything)) == 5  # one edit critique and four text-to-image ones
    assert studio.critique_progress("carol") == {"mine": 5, "remaining": 0, "everyone": 5, "total": 5}
    # Every critique has one reviewer now; dave's makes a second on one, so erin is handed another.
    dave_first = studio.next_critique("dave")
    studio.annotate("dave", dave_first["critique_id"], accept_all(dave_first))
    erin_first = studio.next_critique("erin")
    assert erin_first["critique_id"] != dave_first["critique_id"]


def test_skip_back_and_undo(studio):
    first = studio.next_critique("carol")
    studio.skip_critique("carol", first["critique_id"])
    second = studio.next_critique("carol", exclude=[first["critique_id"]])
    assert second["critique_id"] != first["critique_id"]
    key = second["scores"][0]["key"]
    studio.annotate("carol", second["critique_id"], {key: {"verdict": "correct", "score": 2.75, "comment": "too dark"}})
    back = studio.critique_for_review("carol", second["critique_id"])
    assert back["mine"] == {key: {"verdict": "correct", "score": 2.75, "comment": "too dark"}}
    undone = studio.undo_annotation("carol")
    assert undone["critique_id"] == second["critique_id"] and undone["mine"] == {}
    assert rows(studio, Annotation) == []
    assert studio.undo_annotation("carol") is None


def test_a_correction_needs_its_score(studio):
    item = studio.next_critique("carol")
    key = item["scores"][0]["key"]
    with pytest.raises(Exception, match="correction needs a score"):
        studio.annotate("carol", item["critique_id"], {key: {"verdict": "correct", "score": ""}})
    with pytest.raises(Exception, match="between 1 and 4, got 5"):
        studio.annotate("carol", item["critique_id"], {key: {"verdict": "correct", "score": 5}})


def test_pairs_are_shuffled_reproducibly_and_the_shown_side_is_stored(studio):
    pair = studio.next_pair("carol")
    left, right = pair["left"], pair["right"]
    assert pair["request"] == "a red fox in the snow"
    with studio.sessions() as db:  # the gallery's name for each image, never its database id
        for side in (left, right):
            row = db.get(CandidateRow, side["candidate_id"])
            assert side["label"] == f"round {row.round_index + 1} · #{row.candidate_index + 1}"
    low, high = sorted((left["candidate_id"], right["candidate_id"]))
    assert (left["candidate_id"] == low) is left_first(low, high) is left_first(high, low)
    sides = []
    for _ in range(6):  # four images make six pairs
        pair = studio.next_pair("carol")
        sides.append(pair["left"]["candidate_id"] < pair["right"]["candidate_id"])
        studio.pick_side("carol", pair["left"]["candidate_id"], pair["right"]["candidate_id"], "left")
    assert studio.next_pair("carol") is None
    assert True in sides and False in sides  # both ways appear
    judged = rows(studio, PairJudgement)
    assert [(j.judge_id, j.preference, j.left_candidate_id == j.candidate_a_id) for j in judged] == [("carol", "A", True)] * 6
    progress = studio.pair_progress("carol")
    assert progress == {"mine": 6, "remaining": 0, "everyone": 6, "total": 6, "left_share": 1.0}
    assert studio.agreement("carol")["position_bias"]["carol"] == {"left": 6, "picks": 6, "left_share": 1.0}


def test_undo_and_skip_a_pick(studio):
    pair = studio.next_pair("carol")
    studio.skip_pair("carol", pair["left"]["candidate_id"], pair["right"]["candidate_id"])
    other = studio.next_pair("carol", exclude=[pair["key"]])
    assert other["key"] != pair["key"]
    studio.pick_side("carol", other["left"]["candidate_id"], other["right"]["candidate_id"], "right")
    again = studio.undo_pick("carol")
    assert again["key"] == other["key"] and rows(studio, PairJudgement) == []
    with pytest.raises(Exception, match="left, right or tie"):
        studio.pick_side("carol", 1, 2, "up")


def test_agreement_per_item_and_per_reviewer_pair_and_the_export_reads_the_same_figure(studio):
    critique = studio.next_critique("carol")
    keys = [row["key"] for row in critique["scores"]]
    studio.annotate("carol", critique["critique_id"], {k: {"verdict": "accept"} for k in keys})
    dave = studio.critique_for_review("dave", critique["critique_id"])
    studio.annotate("dave", dave["critique_id"],
                    {k: {"verdict": "accept" if i else "reject"} for i, k in enumerate(keys)})
    found = studio.agreement("erin")["critiques"]
    shares = {tuple(item["item"]): item["agreement"] for item in found["items"]}
    assert shares[(critique["critique_id"], keys[0])] == 0.5
    assert shares[(critique["critique_id"], keys[1])] == 1.0
    (pair,) = found["reviewer_pairs"]
    assert (pair["first"], pair["second"], pair["items"]) == ("carol", "dave", len(keys))
    assert pair["observed"] == pytest.approx((len(keys) - 1) / len(keys))

    with studio.sessions() as db:
        a, b, c = (r.id for r in repo.session_candidates(db, repo.list_sessions(db, "alice")[0].id, "alice")[:3])
    for judge, preference in (("carol", "A"), ("dave", "A"), ("erin", "B")):
        studio.pick_pair(judge, a, b, preference, left_candidate=a)
    studio.pick_pair("carol", a, c, "A", left_candidate=c)
    studio.pick_pair("dave", c, a, "B", left_candidate=c)  # the same preference, written the other way round
    pairs = {tuple(item["item"]): item["agreement"] for item in studio.agreement("carol")["pairs"]["items"]}
    assert pairs == {(a, b): pytest.approx(2 / 3), (a, c): 1.0}
    with studio.sessions() as db:
        exported = {(p.candidate_a.id, p.candidate_b.id): p.agreement for p in aggregate_pairs(db, ExportFilters())}
        kept = aggregate_pairs(db, ExportFilters(min_agreement=0.7))
    for key, share in pairs.items():
        assert exported[key] == pytest.approx(share)
    assert (a, b) not in {(p.candidate_a.id, p.candidate_b.id) for p in kept}

    queue = studio.disagreements("erin")
    assert [(q["kind"], q["agreement"]) for q in queue] == [("critiques", 0.5), ("pairs", pytest.approx(2 / 3))]
    assert queue[0]["label"].endswith(f"· round 1 · #1 · {critique['scores'][0]['heading']}")
    assert queue[1]["label"] == "“a red fox in the snow” · round 1 · #1 vs round 1 · #2"


def test_a_lease_held_by_another_worker_is_respected(studio):
    item = studio.next_critique("carol")
    studio.user("dave")
    with write_transaction(studio.sessions) as db:
        now = datetime.now(timezone.utc)
        assert not repo.take_lease(db, item=repo.critique_item(item["critique_id"]), holder_id="dave", now=now,
                                   until=now + timedelta(minutes=1))
        assert repo.take_lease(db, item=repo.critique_item(item["critique_id"]), holder_id="dave",
                               now=now + timedelta(hours=1), until=now + timedelta(hours=2))


def test_reviewers_asking_at_the_same_moment_get_different_critiques(studio):
    names = ["carol", "dave", "erin"]
    for name in names:
        studio.user(name)
    barrier, got, errors = threading.Barrier(len(names)), {}, []

    def ask(name: str) -> None:
        try:
            barrier.wait(10)
            got[name] = studio.next_critique(name)["critique_id"]
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(set(got.values())) == len(names)
    with studio.sessions() as db:
        holders = {lease.holder_id for lease in db.scalars(select(ReviewLease))}
    assert holders == set(names)


def test_each_view_keeps_its_own_lease(studio):
    item = studio.next_critique("carol")
    pair = studio.next_pair("carol")  # opening Compare does not free the critique open in Review
    studio.next_pair("carol", exclude=[pair["key"]])
    with studio.sessions() as db:
        items = {lease.item for lease in db.scalars(select(ReviewLease))}
    assert repo.critique_item(item["critique_id"]) in items and pair["key"] not in items
    assert len(items) == 2
