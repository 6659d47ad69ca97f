"""Issue 15 B: the page names the prompt templates in use, and each critique shown names its own."""

from __future__ import annotations

import pytest

from rr_core.prompts import describe_active_templates
from tests.app.conftest import ScriptedModels, make_service
from tests.app.test_mappers import NEVER_STOP, panels  # noqa: F401  (the panels fixture)
from ui import mappers


@pytest.fixture()
def service(tmp_path):
    service = make_service(tmp_path, ScriptedModels())
    yield service
    service.engine.dispose()


def test_models_and_setup_lists_every_active_template(service):
    details = service.health_check.details()
    assert details.startswith(service.health_check.health())
    assert "Prompt templates" in details
    for row in describe_active_templates():
        assert f"{row['task']} {row['mode']}" in details
        assert f"`{row['template_version']}`" in details


def test_the_reward_line_names_the_template_of_the_shown_critique(service, panels):  # noqa: F811
    view = list(service.run_loop("alice", "a red fox in the snow", NEVER_STOP))[-1]
    critique = view.focus(None).critique
    assert critique.template_version.startswith("shipped:t2i_pointwise@")
    scores = mappers.result_values(panels.create, view)[panels.create.scores]
    reward_line = scores[scores.index("class='rr-reward'"):]
    assert f"template <code>{critique.template_version}</code>" in reward_line


def test_a_critique_without_a_recorded_template_shows_no_template(service, panels):  # noqa: F811
    view = list(service.run_loop("alice", "a red fox in the snow", NEVER_STOP))[-1]
    view.focus(None).critique.template_version = ""
    scores = mappers.result_values(panels.create, view)[panels.create.scores]
    assert "template" not in scores
