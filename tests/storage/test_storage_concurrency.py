"""Concurrent writers lose nothing: 8 threads x 200 rounds, each round its own transaction."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from storage import repository as repo
from storage.db import write_transaction
from storage.models import CritiqueRow, Image, CandidateRow

THREADS, ROUNDS = 8, 200


@pytest.mark.slow
def test_eight_writers(factory, store, make_image, make_critique, new_user_id):
    owners, sessions = [], []
    with write_transaction(factory) as s:
        for _ in range(THREADS):
            owners.append(repo.get_or_create_user(s, new_user_id("writer")).id)
            sessions.append(repo.create_session(s, owner_id=owners[-1], task="t2i", request="load").id)
    critique = make_critique(seed=5)
    shared = make_image(0, size=4)  # every thread also writes the same source image: dedup under contention
    errors: list[Exception] = []
    start = threading.Barrier(THREADS)

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(ROUNDS):
                with write_transaction(factory) as s:
                    repo.record_candidate(s, store=store, session_id=sessions[t], owner_id=owners[t], request=f"p{i}",
                                      image=make_image(100_000 + t * ROUNDS + i, size=4), critique=critique,
                                      round_index=i, generator_settings={"thread": t})
                    repo.store_image(s, store, shared)
        except Exception as error:  # noqa: BLE001 (collected and checked in the main thread)
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with factory() as s:
        per_session = dict(s.execute(select(CandidateRow.session_id, func.count()).where(CandidateRow.session_id.in_(sessions))
                                     .group_by(CandidateRow.session_id)).all())
        assert per_session == {sid: ROUNDS for sid in sessions}
        critiques = s.scalar(select(func.count()).select_from(CritiqueRow).join(CandidateRow)
                             .where(CandidateRow.session_id.in_(sessions)))
        assert critiques == THREADS * ROUNDS
        for sid in sessions:
            assert [r.round_index for r in s.scalars(select(CandidateRow).where(CandidateRow.session_id == sid)
                                                     .order_by(CandidateRow.round_index))] == list(range(ROUNDS))
        hashes = s.scalars(select(CandidateRow.image_sha256).where(CandidateRow.session_id.in_(sessions))).all()
        assert len(set(hashes)) == THREADS * ROUNDS
        assert s.scalar(select(func.count()).select_from(Image).where(Image.sha256.in_(hashes))) == THREADS * ROUNDS
    assert all(store.exists(sha) for sha in hashes)
