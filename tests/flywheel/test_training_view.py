"""The Training view (admins): counts of what is ready, the commands for this database, and the runs
under the data folder read from the logs the trainers write."""

from __future__ import annotations

import json
import shlex

import pytest
from PIL import Image
from sqlalchemy import select

from storage.models import PairJudgement

from studio.users import AuthSettings, RoleRequired
from tests.studio.conftest import ScriptedModels, make_services


@pytest.fixture
def filled(tmp_path):
    services = make_services(tmp_path, ScriptedModels())
    list(services.run_loop(None, "a red kite", {"rounds": 2, "candidates": 2, "stop_threshold": None}))
    list(services.run_loop(None, "add a hat", {"rounds": 1}, Image.new("RGB", (32, 32), "blue")))
    for _ in range(3):
        item = services.next_critique(None)
        services.annotate(None, item["critique_id"], {"text_faithfulness": {"verdict": "accept"}})
    pair = services.next_pair(None)
    services.pick_pair(None, pair["candidate_a"], pair["candidate_b"], "A")
    yield services
    services.engine.dispose()


def write_runs(root):
    student = root / "runs" / "parrot" / "student"
    student.mkdir(parents=True)
    (student / "distill_config.json").write_text(json.dumps({"max_steps": 10}))
    (student / "train_log.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "loss": 2.0 / s, "lr": 1e-5}) for s in (1, 2, 3)) + "\n{\"step\": 4, \"lo")
    rl = root / "runs" / "rl-t2i"
    (rl / "final").mkdir(parents=True)
    (rl / "config.json").write_text(json.dumps({"max_steps": 4}))
    (rl / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "reward/mean": 0.1 * s}) for s in (1, 2, 3, 4)))
    return student, rl


def test_counts_commands_and_runs(filled, tmp_path):
    student, rl = write_runs(tmp_path)
    overview = filled.training_overview(None)
    assert overview.counts == {"pairs": 1, "reviewed_critiques": 3, "prompts_t2i": 1, "prompts_edit": 1}
    lines = [line for line in overview.commands.splitlines() if line and not line.startswith("#")]
    url = str(filled.engine.url)
    parrot = shlex.split(lines[0])
    assert parrot[0] == f"RR_DATA_DIR={tmp_path}"  # where the export finds the images
    assert parrot[1:5] == ["python", "-m", "training.parrot", "run"] and "--from-db" in parrot
    assert parrot[parrot.index("--database-url") + 1] == url
    assert any(shlex.split(line)[1:4] == ["python", "-m", "training.rl"] and "--from-db" in line for line in lines)
    assert any(line.startswith("python app.py --critic-adapter") for line in lines)
    runs = {run.name: run for run in overview.runs}
    assert runs["parrot"].kind == "parrot" and runs["parrot"].step == 3 and runs["parrot"].total == 10
    assert runs["parrot"].metrics == {"loss": pytest.approx(2 / 3)} and not runs["parrot"].finished
    assert runs["rl-t2i"].step == 4 and runs["rl-t2i"].finished and runs["rl-t2i"].artefact == str(rl / "final")
    assert runs["rl-t2i"].metrics["reward/mean"] == pytest.approx(0.4)
    assert runs["rl-t2i"].row()[2] == "4/4 (done)"


def test_a_pair_judged_from_either_side_counts_once(filled):
    """The view counts pairs as the pairs export writes them: one unordered pair of images, whichever
    side each judge was shown (the API takes either order)."""
    with filled.sessions() as db:
        first = db.scalars(select(PairJudgement)).one()
        a, b = first.candidate_a_id, first.candidate_b_id
    filled.pick_pair(None, b, a, "B")  # the same verdict, the pair the other way round
    assert filled.export(None, "pairs")["count"] == 1
    assert filled.training_overview(None).counts["pairs"] == 1


def test_the_view_is_for_admins_only(tmp_path):
    auth = AuthSettings.parse("ann:pw:annotator,root:pw:admin")
    auth.admins = frozenset({"root"})
    services = make_services(tmp_path, ScriptedModels(), auth=auth)
    try:
        with pytest.raises(RoleRequired, match="admins"):
            services.training_overview("ann")
        assert services.training_overview("root").counts["pairs"] == 0
    finally:
        services.engine.dispose()


def test_the_app_has_a_training_tab(filled):
    from app import build_app

    demo = build_app(filled)
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    assert {"tab-training", "training-counts", "training-commands", "training-runs"} <= ids


def test_commands_name_this_database_and_its_images_whatever_the_shell(tmp_path, monkeypatch):
    """The app's own default database (RR_DATA_DIR set where the app runs) is still named in full: the
    commands are pasted into another shell, where RR_DATA_DIR may be unset or another folder, and the
    export they run reads images from RR_DATA_DIR's store."""
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("RR_DATABASE_URL", raising=False)
    services = make_services(tmp_path, ScriptedModels())
    try:
        commands = services.training_overview(None).commands
    finally:
        services.engine.dispose()
    training = [shlex.split(line) for line in commands.splitlines() if " -m training." in line]
    assert len(training) == 3
    for words in training:
        assert words[0] == f"RR_DATA_DIR={tmp_path}", words
        assert words[words.index("--database-url") + 1] == f"sqlite:///{tmp_path / 'studio.sqlite3'}"
