"""Ten gradio_client sessions at once with the tiny preset: every round stored, none mixed up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client
from sqlalchemy import select

from storage.models import CritiqueRow, CandidateRow, SessionRow
from tests.app.conftest import launched, make_service, tiny_studio

pytestmark = pytest.mark.slow
SESSIONS = 10


def test_ten_concurrent_sessions(module_dir):
    # Without sign-in all ten are the one local user, whose jobs count from submission (studio.scheduling).
    service = make_service(module_dir, tiny_studio(), max_runs_per_user=SESSIONS)
    with launched(service) as url:
        def one(i: int) -> dict:
            client = Client(url, verbose=False)
            return client.predict(prompt=f"prompt number {i}: a cat with {i} hats", rounds=2, steps=1,
                                  stop_threshold=0, seed=i, api_name="/run_loop")

        with ThreadPoolExecutor(SESSIONS) as pool:
            results = list(pool.map(one, range(SESSIONS)))
        with service.sessions() as db:
            sessions = list(db.scalars(select(SessionRow)))
            assert len(sessions) == SESSIONS
            for i, result in enumerate(results):
                assert result["request"] == f"prompt number {i}: a cat with {i} hats"
                session = db.get(SessionRow, result["session_id"])
                assert session.request == result["request"]
                rounds = list(db.scalars(select(CandidateRow).where(CandidateRow.session_id == session.id)
                                         .order_by(CandidateRow.round_index)))
                assert [r.round_index for r in rounds] == [0, 1]
                assert rounds[0].request == session.request and all(r.seed == i for r in rounds)
                assert [r.id for r in rounds] == [x["candidates"][0]["candidate_id"] for x in result["rounds"]]
                for row in rounds:
                    critiques = list(db.scalars(select(CritiqueRow).where(CritiqueRow.candidate_id == row.id)))
                    assert len(critiques) == 1
            assert len({r.id for r in db.scalars(select(CandidateRow))}) == 2 * SESSIONS
