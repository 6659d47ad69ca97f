"""Sessions and review at scale: counts are COUNT queries, and the next A/B pair is found by one query
however many rounds the database holds."""

from __future__ import annotations

import itertools

from PIL import Image
from sqlalchemy import event

from storage import repository as repo
from storage.db import write_transaction
from storage.models import PairJudgement, CandidateRow, utcnow
from studio.users import LOCAL_USER


def _statements(engine):
    seen = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def test_stats_count_every_session_beyond_one_page(services):
    services.user(None)
    with write_transaction(services.sessions) as db:
        for i in range(repo.MAX_PAGE + 7):
            repo.create_session(db, owner_id=LOCAL_USER, task="t2i", request=f"prompt {i}")
    assert services.stats(None)["my_sessions"] == repo.MAX_PAGE + 7


def test_list_sessions_counts_rounds(services):
    first = list(services.run_loop(None, "three rounds", {"rounds": 3, "candidates": 2, "stop_threshold": None}))[-1]
    list(services.run_loop(None, "one round", {"rounds": 1}))
    listed = {s["id"]: s["rounds"] for s in services.list_sessions(None)}
    assert listed[first.session_id] == 3 and sorted(listed.values()) == [1, 3]


def _many_rounds(services, sessions: int, per_session: int) -> dict[str, list[int]]:
    services.user(None)
    picture = Image.new("RGB", (8, 8), (1, 2, 3))
    ids: dict[str, list[int]] = {}
    with write_transaction(services.sessions) as db:
        for s in range(sessions):
            session_id = repo.create_session(db, owner_id=LOCAL_USER, task="t2i", request=f"p{s}").id
            for r in range(per_session):
                row = repo.record_candidate(db, store=services.store, session_id=session_id, owner_id=LOCAL_USER,
                                        request=f"p{s}", image=picture, critique=None, round_index=r)
                ids.setdefault(session_id, []).append(row.id)
    return dict(sorted(ids.items()))


def _expected_first_unjudged(ids: dict[str, list[int]], judged: set[tuple[int, int]]):
    for rounds in ids.values():
        for a, b in itertools.combinations(sorted(rounds), 2):
            if (a, b) not in judged:
                return a, b
    return None


def test_next_pair_with_many_rounds_is_one_query_and_skips_judged_pairs(services):
    ids = _many_rounds(services, sessions=40, per_session=25)  # 1,000 rounds
    judged: set[tuple[int, int]] = set()
    with write_transaction(services.sessions) as db:
        # Judge every pair of the first two sessions, and the first pair of the third one in B-A order.
        for rounds in list(ids.values())[:2]:
            for a, b in itertools.combinations(rounds, 2):
                repo.add_pair_judgement(db, candidate_a_id=a, candidate_b_id=b, preference="A", judge_id=LOCAL_USER)
                judged.add((a, b))
        third = list(ids.values())[2]
        repo.add_pair_judgement(db, candidate_a_id=third[1], candidate_b_id=third[0], preference="B", judge_id=LOCAL_USER)
        judged.add((third[0], third[1]))
    expected = _expected_first_unjudged(ids, judged)
    assert expected == (third[0], third[2])

    with services.sessions() as db:
        seen = _statements(services.engine)
        assert repo.pair_queue(db, judge_id=LOCAL_USER, now=utcnow(), limit=1) == [expected]
        assert len([s for s in seen if "candidates" in s.lower()]) == 1
        first = list(ids.values())[0]
        assert repo.pair_queue(db, judge_id=LOCAL_USER, now=utcnow(), exclude=[repo.pair_item(*expected)],
                               limit=1) == [(third[0], third[3])]
        assert tuple(first[:2]) not in repo.pair_queue(db, judge_id=LOCAL_USER, now=utcnow(), limit=repo.MAX_PAGE)

    pair = services.next_pair(None)  # no pair has a judgement by anyone else, so the same pair comes first
    assert tuple(sorted((pair["left"]["candidate_id"], pair["right"]["candidate_id"]))) == expected
    assert pair["left"]["image"].size == pair["right"]["image"].size == (8, 8)


def test_next_pair_is_none_when_every_pair_is_judged(services):
    ids = _many_rounds(services, sessions=2, per_session=3)
    with write_transaction(services.sessions) as db:
        for rounds in ids.values():
            for a, b in itertools.combinations(rounds, 2):
                repo.add_pair_judgement(db, candidate_a_id=a, candidate_b_id=b, preference="tie", judge_id=LOCAL_USER)
    assert services.next_pair(None) is None
    with services.sessions() as db:
        assert db.query(PairJudgement).count() == 6 and db.query(CandidateRow).count() == 6
