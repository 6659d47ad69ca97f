"""Round trips of every model and the repository's ownership rules, on every backend."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rr_core.critique import ParseStatus, Preference
from rr_core.rubric import Task
from storage import repository as repo
from storage.db import write_transaction
from storage.errors import NotFound, SessionAccessDenied
from storage.models import (
    Annotation,
    CritiqueRow,
    Image,
    PairJudgement,
    PairSource,
    Role,
    CandidateRow,
    SessionRow,
    User,
    Verdict,
    utcnow,
)


@pytest.fixture
def owner(factory, new_user_id):
    with write_transaction(factory) as s:
        return repo.get_or_create_user(s, new_user_id("designer"), "Dee Signer").id


def _session(factory, owner, task="t2i", prompt="a red kite over a beach", **kw):
    with write_transaction(factory) as s:
        return repo.create_session(s, owner_id=owner, task=task, request=prompt, **kw).id


def _round(factory, store, owner, session_id, image, critique, index=0, candidate=0, **kw):
    with write_transaction(factory) as s:
        return repo.record_candidate(s, store=store, session_id=session_id, owner_id=owner, request="a red kite",
                                 image=image, critique=critique, round_index=index, candidate_index=candidate,
                                 **kw).id


def test_user_and_session_round_trip(factory, owner):
    sid = _session(factory, owner, task="edit", prompt="make the sky pink", title="Pink sky",
                   settings={"rounds": 3, "dims": ["text_faithfulness"]})
    with factory() as s:
        user = s.get(User, owner)
        assert (user.display_name, user.role) == ("Dee Signer", Role.DESIGNER)
        assert user.created_at.tzinfo is not None
        row = s.get(SessionRow, sid)
        assert (row.owner_id, row.task, row.title, row.request) == (owner, "edit", "Pink sky", "make the sky pink")
        assert row.settings == {"rounds": 3, "dims": ["text_faithfulness"]}
        assert len(row.id) == 32 and row.created_at.tzinfo is not None


def test_round_image_and_critique_round_trip(factory, store, owner, make_image, make_critique):
    sid = _session(factory, owner, task="edit", prompt="make the sky pink")
    image, source = make_image(101), make_image(102, size=12)
    critique = make_critique(Task.EDIT, seed=3)
    first = _round(factory, store, owner, sid, image, critique, source_image=source, seed=2**40,
                   generator_settings={"steps": 4, "guidance": 3.5}, used_prompt="make the sky bright pink")
    second = _round(factory, store, owner, sid, make_image(103), make_critique(Task.EDIT, seed=4), index=1,
                    source_image=source, parent_candidate_id=first, chosen=True)
    with factory() as s:
        row = s.get(CandidateRow, first)
        assert (row.request, row.used_prompt, row.refined_request) == (
            "a red kite", "make the sky bright pink", critique.refined_request)
        assert (row.seed, row.generator_settings, row.chosen) == (2**40, {"steps": 4, "guidance": 3.5}, False)
        assert (row.round_index, row.candidate_index, row.parent_candidate_id) == (0, 0, None)
        assert s.get(CandidateRow, second).parent_candidate_id == first and s.get(CandidateRow, second).chosen
        img = s.get(Image, row.image_sha256)
        assert (img.width, img.height, img.format) == (8, 8, "PNG")
        assert s.get(Image, row.source_image_sha256).width == 12
        assert list(store.open(row.image_sha256).getdata()) == list(image.getdata())
        assert list(store.open(row.source_image_sha256).getdata()) == list(source.getdata())
        assert s.get(CandidateRow, second).source_image_sha256 == row.source_image_sha256  # deduplicated
        [crit] = row.critiques
        assert crit.status == "ok" and crit.reward == pytest.approx(critique.reward)
        assert crit.reward_dimensions == list(critique.reward_dimensions)
        assert (crit.model_id, crit.template_version, crit.constrained) == ("tiny-critic", "v1", True)
        assert (crit.latency_s, crit.prompt_tokens, crit.completion_tokens) == (0.25, 700, 300)
        assert crit.raw_text == critique.raw_text
        assert repo.critique_from_row(crit) == critique


def test_annotation_and_pair_round_trip(factory, store, owner, make_image, make_critique, new_user_id):
    sid = _session(factory, owner)
    a = _round(factory, store, owner, sid, make_image(201), make_critique(seed=1))
    b = _round(factory, store, owner, sid, make_image(202), make_critique(seed=2), candidate=1)
    with write_transaction(factory) as s:
        annotator = repo.get_or_create_user(s, new_user_id("annotator"), role="annotator").id
    with factory() as s:
        critique_id = s.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == a))
        queue = repo.review_queue(s, annotator_id=annotator, now=utcnow(), limit=500)
        assert critique_id in [c.id for c in queue]
    with write_transaction(factory) as s:
        repo.add_annotation(s, critique_id=critique_id, annotator_id=annotator, dimension="text_faithfulness",
                            verdict="accept", comment="right")
        repo.add_annotation(s, critique_id=critique_id, annotator_id=annotator, dimension="physical_quality",
                            verdict=Verdict.CORRECT, corrected_score=1.5, comment="hands are broken")
        repo.add_pair_judgement(s, candidate_a_id=a, candidate_b_id=b, preference=Preference.B, judge_id=annotator)
        repo.add_pair_judgement(s, candidate_a_id=b, candidate_b_id=a, preference="tie", judge_id=None,
                                source=PairSource.DERIVED, derived_from="tiny-critic", acting_user_id=owner)
    with factory() as s:
        notes = s.scalars(select(Annotation).where(Annotation.critique_id == critique_id)
                          .order_by(Annotation.dimension)).all()
        assert [(n.dimension, n.verdict, n.corrected_score, n.comment, n.annotator_id) for n in notes] == [
            ("physical_quality", Verdict.CORRECT, 1.5, "hands are broken", annotator),
            ("text_faithfulness", Verdict.ACCEPT, None, "right", annotator)]
        assert notes[0].created_at.tzinfo is not None
        pairs = s.scalars(select(PairJudgement).where(PairJudgement.candidate_a_id.in_([a, b]))
                          .order_by(PairJudgement.id)).all()
        assert [(p.candidate_a_id, p.candidate_b_id, p.preference, p.judge_id, p.source, p.derived_from) for p in pairs] == [
            (a, b, "B", annotator, PairSource.HUMAN, ""), (b, a, "tie", None, PairSource.DERIVED, "tiny-critic")]
        assert critique_id not in [c.id for c in repo.review_queue(s, annotator_id=annotator, now=utcnow(), limit=500)]
        assert repo.count_annotated_critiques(s, annotator_id=annotator) == 1
        before = repo.count_preference_pairs(s)
    with write_transaction(factory) as s:  # replacing a verdict keeps one row per annotator and dimension
        repo.add_annotation(s, critique_id=critique_id, annotator_id=annotator, dimension="text_faithfulness",
                            verdict="reject")
    with factory() as s:
        assert s.scalar(select(Annotation.verdict).where(
            Annotation.critique_id == critique_id, Annotation.dimension == "text_faithfulness")) is Verdict.REJECT
        assert repo.count_preference_pairs(s) == before


def test_counts(factory, store, owner, make_image, make_critique, new_user_id):
    with factory() as s:
        pairs0, pairs_edit0 = repo.count_preference_pairs(s), repo.count_preference_pairs(s, task="edit")
        annotated0 = repo.count_annotated_critiques(s)
    sid = _session(factory, owner)
    rounds = [_round(factory, store, owner, sid, make_image(300 + i), make_critique(seed=i), candidate=i)
              for i in range(3)]
    with write_transaction(factory) as s:
        repo.add_pair_judgement(s, candidate_a_id=rounds[0], candidate_b_id=rounds[1], preference="A", judge_id=owner)
        repo.add_pair_judgement(s, candidate_a_id=rounds[1], candidate_b_id=rounds[0], preference="B", judge_id=owner)
        repo.add_pair_judgement(s, candidate_a_id=rounds[1], candidate_b_id=rounds[2], preference="A", judge_id=owner)
        ids = s.scalars(select(CritiqueRow.id).where(CritiqueRow.candidate_id.in_(rounds))).all()
        for cid in ids[:2]:
            repo.add_annotation(s, critique_id=cid, annotator_id=owner, dimension="text_faithfulness",
                                verdict="accept")
    with factory() as s:
        assert repo.count_preference_pairs(s) == pairs0 + 2
        assert repo.count_preference_pairs(s, task="t2i") >= 2
        assert repo.count_preference_pairs(s, task="edit") == pairs_edit0
        assert repo.count_annotated_critiques(s) == annotated0 + 2


def test_other_users_sessions_are_refused(factory, store, owner, make_image, make_critique, new_user_id):
    sid = _session(factory, owner)
    rid = _round(factory, store, owner, sid, make_image(401), make_critique())
    rid2 = _round(factory, store, owner, sid, make_image(403), make_critique(), candidate=1)
    with write_transaction(factory) as s:
        intruder = repo.get_or_create_user(s, new_user_id("intruder")).id
        annotator = repo.get_or_create_user(s, new_user_id("annotator"), role=Role.ANNOTATOR).id
    with factory() as s:
        # Another designer's session answers exactly like a missing one.
        with pytest.raises(NotFound, match=f"^no session '{sid}'$"):
            repo.get_session_for_user(s, sid, intruder)
        with pytest.raises(NotFound):
            repo.session_candidates(s, sid, intruder)
        with pytest.raises(NotFound, match=f"^no candidate {rid}$"):
            repo.get_candidate_for_user(s, rid, intruder)
        with pytest.raises(NotFound):
            repo.get_session_for_user(s, "0" * 32, owner)
        assert repo.list_sessions(s, intruder) == []
        critique_id = s.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == rid))
        assert critique_id not in [c.id for c in repo.review_queue(s, annotator_id=intruder, now=utcnow(), limit=500)]
        assert repo.get_session_for_user(s, sid, annotator).id == sid  # annotators read every session
    with pytest.raises(NotFound, match=f"^no critique {critique_id}$"), write_transaction(factory) as s:
        repo.add_annotation(s, critique_id=critique_id, annotator_id=intruder, dimension="text_faithfulness",
                            verdict="accept")
    with pytest.raises(SessionAccessDenied), write_transaction(factory) as s:
        repo.delete_session(s, sid, annotator)
    with pytest.raises(NotFound), write_transaction(factory) as s:
        repo.record_candidate(s, store=store, session_id=sid, owner_id=intruder, request="x", image=make_image(402),
                          critique=make_critique(), round_index=5)
    with pytest.raises(NotFound), write_transaction(factory) as s:
        repo.add_pair_judgement(s, candidate_a_id=rid, candidate_b_id=rid2, preference="A", judge_id=intruder)
    with pytest.raises(NotFound), write_transaction(factory) as s:
        repo.set_chosen(s, candidate_id=rid, user_id=intruder)


def test_input_checks(factory, store, owner, make_image, make_critique):
    sid = _session(factory, owner, task="edit", prompt="pink sky")
    with pytest.raises(ValueError, match="source image"), write_transaction(factory) as s:
        repo.record_candidate(s, store=store, session_id=sid, owner_id=owner, request="x", image=make_image(1),
                          critique=make_critique("edit"), round_index=0)
    with pytest.raises(ValueError, match="task"), write_transaction(factory) as s:
        repo.record_candidate(s, store=store, session_id=sid, owner_id=owner, request="x", image=make_image(1),
                          critique=make_critique("t2i"), round_index=0, source_image=make_image(2))
    rid = _round(factory, store, owner, sid, make_image(3), make_critique("edit"), source_image=make_image(2))
    with factory() as s:
        cid = s.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == rid))
    for kwargs, message in [({"dimension": "nonsense", "verdict": "accept"}, "no dimension"),
                            ({"dimension": "text_faithfulness", "verdict": "correct", "corrected_score": 7}, "score"),
                            ({"dimension": "text_faithfulness", "verdict": "accept", "corrected_score": 2}, "only")]:
        with pytest.raises(ValueError, match=message), write_transaction(factory) as s:
            repo.add_annotation(s, critique_id=cid, annotator_id=owner, **kwargs)
    with pytest.raises(ValueError, match="different"), write_transaction(factory) as s:
        repo.add_pair_judgement(s, candidate_a_id=rid, candidate_b_id=rid, preference="A", judge_id=owner)


def test_list_search_and_paging(factory, owner, new_user_id):
    ids = [_session(factory, owner, prompt=p) for p in
           ["a red kite", "a blue whale", "RED barn at 50% zoom", "under_score cat"]]
    with write_transaction(factory) as s:
        other = repo.get_or_create_user(s, new_user_id()).id
        repo.create_session(s, owner_id=other, task="t2i", request="red for someone else")
    with factory() as s:
        listed = repo.list_sessions(s, owner, limit=500)
        assert set(ids) <= {r.id for r in listed} and all(r.owner_id == owner for r in listed)
        assert [r.created_at for r in listed] == sorted((r.created_at for r in listed), reverse=True)
        assert {r.request for r in repo.list_sessions(s, owner, search="red")} == {"a red kite", "RED barn at 50% zoom"}
        assert [r.request for r in repo.list_sessions(s, owner, search="50%")] == ["RED barn at 50% zoom"]
        assert [r.request for r in repo.list_sessions(s, owner, search="a_r")] == []
        assert [r.request for r in repo.list_sessions(s, owner, search="r_s")] == ["under_score cat"]
        page1 = repo.list_sessions(s, owner, limit=2)
        page2 = repo.list_sessions(s, owner, limit=2, offset=2)
        assert len(page1) == 2 and not {r.id for r in page1} & {r.id for r in page2}


def test_delete_session_removes_its_rows(factory, store, owner, make_image, make_critique):
    sid = _session(factory, owner)
    a = _round(factory, store, owner, sid, make_image(501), make_critique())
    b = _round(factory, store, owner, sid, make_image(502), make_critique(), candidate=1)
    with write_transaction(factory) as s:
        cid = s.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == a))
        repo.add_annotation(s, critique_id=cid, annotator_id=owner, dimension="text_faithfulness", verdict="accept")
        repo.add_pair_judgement(s, candidate_a_id=a, candidate_b_id=b, preference="A", judge_id=owner)
    with write_transaction(factory) as s:
        repo.delete_session(s, sid, owner)
    with factory() as s:
        assert s.get(SessionRow, sid) is None
        assert s.scalars(select(CandidateRow).where(CandidateRow.id.in_([a, b]))).all() == []
        assert s.get(CritiqueRow, cid) is None
        assert s.scalars(select(Annotation).where(Annotation.critique_id == cid)).all() == []
        assert s.scalars(select(PairJudgement).where(PairJudgement.candidate_a_id == a)).all() == []


def test_failed_critique_is_kept_without_reward(factory, store, owner, make_image):
    from rr_core.critique import Critique

    sid = _session(factory, owner)
    failure = Critique.failure(Task.T2I, "server unreachable", raw_text="<html>502</html>", model_id="m")
    rid = _round(factory, store, owner, sid, make_image(601), failure)
    with factory() as s:
        [row] = s.get(CandidateRow, rid).critiques
        assert (row.status, row.reward, row.raw_text) == ("failed", None, "<html>502</html>")
        assert repo.critique_from_row(row).status is ParseStatus.FAILED
        assert s.get(CandidateRow, rid).refined_request == ""


def test_count_sessions_and_round_counts(factory, store, owner, new_user_id, make_image, make_critique):
    with write_transaction(factory) as s:
        fresh = repo.get_or_create_user(s, new_user_id("counter")).id
    ids = [_session(factory, fresh, prompt=f"kite {i}") for i in range(3)]
    _round(factory, store, fresh, ids[0], make_image(71), make_critique(seed=71), index=0, candidate=0)
    _round(factory, store, fresh, ids[0], make_image(72), make_critique(seed=72), index=0, candidate=1)
    _round(factory, store, fresh, ids[0], make_image(73), make_critique(seed=73), index=1)
    _round(factory, store, fresh, ids[1], make_image(74), None)
    with factory() as s:
        assert repo.count_sessions(s, fresh) == 3
        assert repo.round_counts(s, ids) == {ids[0]: 2, ids[1]: 1}
        assert repo.round_counts(s, []) == {}


def _brute_force_first_unjudged(s, judge_id):
    """The review queue's rule by hand: of the pairs `judge_id` has not judged, the one with the fewest
    human judgements, then by session, lower id, higher id."""
    rounds = s.execute(select(CandidateRow.session_id, CandidateRow.id).order_by(CandidateRow.session_id, CandidateRow.id)).all()
    human = [(tuple(sorted((a, b))), judge) for a, b, judge in s.execute(
        select(PairJudgement.candidate_a_id, PairJudgement.candidate_b_id, PairJudgement.judge_id)
        .where(PairJudgement.source == PairSource.HUMAN))]
    judged = {pair for pair, judge in human if judge == judge_id}
    by_session: dict[str, list[int]] = {}
    for session_id, candidate_id in rounds:
        by_session.setdefault(session_id, []).append(candidate_id)
    candidates = [(sum(1 for pair, _ in human if pair == (a, b)), session_id, a, b)
                  for session_id, members in by_session.items()
                  for i, a in enumerate(members) for b in members[i + 1:] if (a, b) not in judged]
    return min(candidates)[2:] if candidates else None


def test_pair_queue_matches_the_rule(factory, store, owner, new_user_id, make_image):
    session_id = _session(factory, owner, prompt="pairs")
    for candidate in range(3):
        _round(factory, store, owner, session_id, make_image(80 + candidate), None, candidate=candidate)
    with write_transaction(factory) as s:
        judge = repo.get_or_create_user(s, new_user_id("judge"), role="annotator").id
    for _ in range(4):
        with factory() as s:
            found = repo.pair_queue(s, judge_id=judge, now=utcnow(), limit=1)[0]  # none has another judge
            assert found == _brute_force_first_unjudged(s, judge)
        with write_transaction(factory) as s:  # judged in B-A order: still counts as that pair
            repo.add_pair_judgement(s, candidate_a_id=found[1], candidate_b_id=found[0], preference="A", judge_id=judge)


def test_critique_keeps_its_prompt_and_reward_spec(factory, store, owner, make_image, make_critique):
    session_id = _session(factory, owner)
    messages = [{"role": "system", "content": "You judge."}, {"role": "user", "content": "<image> a kite"}]
    spec = {"dimensions": ["text_faithfulness"], "weights": None, "require_all": False}
    with_prompt = _round(factory, store, owner, session_id, make_image(90), make_critique(seed=90), index=0,
                         reward_spec=spec, prompt_messages=messages)
    without = _round(factory, store, owner, session_id, make_image(91), make_critique(seed=91), index=1)
    with factory() as s:
        kept = s.scalars(select(CritiqueRow).where(CritiqueRow.candidate_id == with_prompt)).one()
        assert (kept.prompt_messages, kept.reward_spec) == (messages, spec)
        old = s.scalars(select(CritiqueRow).where(CritiqueRow.candidate_id == without)).one()
        assert old.prompt_messages is None and old.reward_spec is None
        assert old.id in {row.id for row in repo.critiques_without_prompt(s, limit=10_000)}
        assert kept.id not in {row.id for row in repo.critiques_without_prompt(s, limit=10_000)}
        assert old.id not in {row.id for row in repo.critiques_without_prompt(s, after_id=old.id, limit=10_000)}


def test_session_contents_count_what_a_purge_removes(factory, store, owner, new_user_id, make_image, make_critique):
    """On both backends: the counts an admin is shown before a purge (each pick once), an edit source
    shared with another session kept, and admins only."""
    with write_transaction(factory) as s:
        admin = repo.get_or_create_user(s, new_user_id("admin"), role="admin").id
        reviewer = repo.get_or_create_user(s, new_user_id("annotator"), role="annotator").id
    source = make_image(701)
    sid = _session(factory, owner, task="edit")
    a = _round(factory, store, owner, sid, make_image(702), make_critique("edit"), source_image=source)
    b = _round(factory, store, owner, sid, make_image(703), make_critique("edit"), index=1, source_image=source)
    other = _session(factory, owner, task="edit")
    c = _round(factory, store, owner, other, make_image(704), make_critique("edit"), source_image=source)
    with write_transaction(factory) as s:
        cid = s.scalar(select(CritiqueRow.id).where(CritiqueRow.candidate_id == a))
        for dimension in ("text_faithfulness", "physical_quality"):
            repo.add_annotation(s, critique_id=cid, annotator_id=reviewer, dimension=dimension, verdict="accept")
        repo.add_pair_judgement(s, candidate_a_id=a, candidate_b_id=b, preference="A", judge_id=reviewer)
        repo.add_pair_judgement(s, candidate_a_id=b, candidate_b_id=a, preference="B", judge_id=owner)
        assert repo.delete_session(s, sid, owner).hidden
    with factory() as s:
        assert sid in [row.id for row in repo.hidden_sessions(s, admin)]
        assert other not in [row.id for row in repo.hidden_sessions(s, admin)]
        assert repo.annotation_counts(s, [sid, other]) == {sid: 2}
        assert repo.pick_counts(s, [sid, other]) == {sid: 2}
        contents = repo.session_contents(s, sid, admin)
        assert (contents.rounds, contents.images, contents.critiques, contents.annotations, contents.picks) == (
            2, 2, 2, 2, 2)
        assert contents.reviewers == sorted([owner, reviewer])
        assert set(contents.freed_images) == {_sha(store, make_image(702)), _sha(store, make_image(703))}
        for call in (lambda: repo.hidden_sessions(s, reviewer), lambda: repo.session_contents(s, sid, owner)):
            with pytest.raises(SessionAccessDenied, match="only an admin"):
                call()
    with write_transaction(factory) as s:
        assert repo.purge_session(s, sid, admin) == contents.freed_images
    with factory() as s:
        assert s.get(SessionRow, sid) is None and s.get(Image, _sha(store, source)) is not None
        assert repo.pick_counts(s, [sid]) == {} and s.get(CandidateRow, c) is not None


def _sha(store, image) -> str:
    return store.put(image).sha256
