"""A run that is refused writes nothing: no session row is left in the user's list when the input is
rejected by the generator, when the critic cannot be loaded, or when the first round fails."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rr_core.errors import InvalidRequest
from storage.models import CandidateRow, SessionRow
from tests.studio.conftest import ScriptedModels, make_services


def _counts(services) -> tuple[int, int]:
    with services.sessions() as db:
        return (db.scalar(select(func.count()).select_from(SessionRow)),
                db.scalar(select(func.count()).select_from(CandidateRow)))


class RefusingGenerator:
    """A generator that rejects its input, as a real one does for a size it cannot make."""

    def generate(self, request):
        raise InvalidRequest("Width and height must be multiples of 16.")


class BrokenCriticModels(ScriptedModels):
    def critic(self):
        raise RuntimeError("the critic checkpoint could not be loaded")

    def loop(self, task):
        self.critic()


def test_input_the_generator_rejects_leaves_no_session(tmp_path):
    models = ScriptedModels()
    models.generator_double = RefusingGenerator()
    services = make_services(tmp_path, models)
    with pytest.raises(InvalidRequest, match="multiples of 16"):
        list(services.run_loop(None, "a kite", {"rounds": 1}))
    with pytest.raises(InvalidRequest, match="multiples of 16"):
        services.generate(None, "a kite", {"rounds": 1})
    assert _counts(services) == (0, 0)
    assert services.list_sessions(None) == []
    services.engine.dispose()


def test_a_critic_that_fails_to_load_leaves_no_session(tmp_path):
    services = make_services(tmp_path, BrokenCriticModels())
    with pytest.raises(RuntimeError, match="could not be loaded"):
        list(services.run_loop(None, "a kite", {"rounds": 1}))
    with pytest.raises(RuntimeError, match="could not be loaded"):
        from PIL import Image

        services.critique(None, "a kite", Image.new("RGB", (16, 16)))
    assert _counts(services) == (0, 0)
    assert services.list_sessions(None) == []
    services.engine.dispose()


def test_the_session_row_is_written_with_the_first_round(tmp_path):
    services = make_services(tmp_path)
    views = services.run_loop(None, "a kite", {"rounds": 2, "stop_threshold": None})
    first = next(views)
    assert first.session_id and _counts(services) == (0, 0)  # nothing stored before a round is done
    last = list(views)[-1]
    assert _counts(services) == (1, 2)
    assert services.open_session(None, last.session_id).run.summary() == last.run.summary()
    services.engine.dispose()
