"""The app as it runs on a Space: the real `spaces` package, SPACE_ID set, ZeroGPU leases per model call,
OAuth users with their roles and their own sessions, data under the persistent folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import rr_core.paths
from rr_core.presets import Models, resolve_preset
from storage.errors import NotFound
from storage.models import Role
from studio.profile import plan_for
from studio.users import AuthSettings
from tests.app.conftest import make_service
from ui import zerogpu
from ui.identity import username_of

ROOT = Path(__file__).resolve().parents[2]
SPACE = {"SPACE_ID": "someone/rationalrewards-studio"}

ZERO_GPU_SCRIPT = """
import json, sys
import spaces
from app import build_app
from rr_core.rubric import Task
from studio.container import create_services
from studio.profile import plan_for
from ui import zerogpu
import os

plan = plan_for(None, os.environ)
service = create_services("tiny", plan=plan)
models = service.health_check.models
installed = zerogpu.install(models)
service.warm_up()
assert service.health_check.state == "ready", service.health_check.state
generator, critic = models.generator(Task.T2I), models.critic()
build_app(service)
print(json.dumps({
    "on_zero_gpu": zerogpu.on_zero_gpu(), "installed": installed, "profile": plan.name,
    "generator": type(generator).__name__, "critic": type(critic).__name__,
    "gpu_size": plan.gpu_size,
    "decorated": {f"{size}:{name}": hasattr(fn, "zerogpu") for size, calls in zerogpu.GPU_CALLS.items()
                  for name, fn in calls.items()},
    "generator_calls_xlarge": generator._calls is zerogpu.GPU_CALLS["xlarge"],
    "handlers_undecorated": zerogpu.gpu(print) is print,
    "gpu_concurrency": zerogpu.gpu_concurrency(),
    "data_dir": str(service.store.root.parent),
}))
"""


@pytest.mark.slow
def test_on_zero_gpu_every_gpu_entry_point_is_a_decorated_lease(tmp_path):
    """The real package with ZeroGPU switched on (as the platform does): every model call is decorated."""
    env = dict(os.environ, **SPACE, SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL="http://127.0.0.1:9",
               RR_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", ZERO_GPU_SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["on_zero_gpu"] and seen["installed"] and seen["profile"] == "zerogpu"
    assert seen["generator"] == "GpuGenerator" and seen["critic"] == "GpuCritic"
    assert seen["decorated"] and all(seen["decorated"].values()), seen["decorated"]
    assert seen["gpu_size"] == "xlarge" and seen["generator_calls_xlarge"]
    assert seen["handlers_undecorated"]  # no handler (a whole loop) holds one lease
    assert seen["gpu_concurrency"] == 4  # visitors' loops interleave their short leases
    assert seen["data_dir"] == str(tmp_path / "data")


def test_off_zero_gpu_the_package_is_a_no_op(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    studio = Models(resolve_preset("tiny"))
    assert not zerogpu.on_zero_gpu() and not zerogpu.install(studio)
    assert zerogpu.gpu_concurrency() == 1  # one local GPU: GPU events one at a time
    assert studio.gpu_wrapper is None


@pytest.fixture
def recorded_calls(monkeypatch):
    """Each GPU call: its name, the duration it declared and how long it took."""
    calls: list[dict] = []

    def recorder(name, fn):
        def call(key, arg):
            declared = fn.gpu_duration(key, arg)
            started = time.perf_counter()
            if name == "stream":
                result = list(fn(key, arg))
            else:
                result = fn(key, arg)
            calls.append({"name": name, "declared": declared, "took": time.perf_counter() - started})
            return iter(result) if name == "stream" else result
        return call

    for name, fn in list(zerogpu.GPU_CALLS["large"].items()):
        monkeypatch.setitem(zerogpu.GPU_CALLS["large"], name, recorder(name, fn))
    return calls


@pytest.mark.slow
def test_a_loop_is_one_gpu_call_per_generation_and_per_critique_batch(tmp_path, monkeypatch, recorded_calls):
    for key, value in SPACE.items():
        monkeypatch.setenv(key, value)
    studio = Models(resolve_preset("tiny", critic_max_new_tokens=64))  # short critiques: a fast test
    assert zerogpu.install(studio, force=True)
    service = make_service(tmp_path, studio)
    views = []
    for view in service.run_loop(None, "a red fox", {"rounds": 2, "candidates": 2, "steps": 1, "on_critique_error": "skip",
                                                     "stop_threshold": None}):
        views.append((len(recorded_calls), view))
    names = [c["name"] for c in recorded_calls]
    assert names == ["generate", "critique_many"] * 2
    # the loop streams between calls: views were yielded while only some of the calls had run
    assert {count for count, _ in views} >= {0, 1, 2, 3, 4}
    for call in recorded_calls:
        assert call["took"] < call["declared"]


def test_one_candidate_streams_its_critique_in_one_gpu_call(tmp_path, monkeypatch, recorded_calls):
    studio = Models(resolve_preset("tiny"))
    zerogpu.install(studio, force=True)
    service = make_service(tmp_path, studio)
    list(service.run_loop(None, "a red fox", {"rounds": 1, "candidates": 1, "steps": 1}))
    assert [c["name"] for c in recorded_calls] == ["generate", "stream"]


def request(oauth_name):
    return SimpleNamespace(username=None, session={"oauth_info": {"userinfo": {"preferred_username": oauth_name}}})


def test_oauth_users_on_a_space_get_their_roles_and_only_their_sessions(tmp_path, monkeypatch):
    for key, value in SPACE.items():
        monkeypatch.setenv(key, value)
    auth = AuthSettings.from_env({**SPACE, "RR_OAUTH": "1", "RR_OAUTH_ROLE": "designer", "RR_ADMINS": "root"})
    studio = Models(resolve_preset("tiny"))
    zerogpu.install(studio, force=True)
    service = make_service(tmp_path, studio, auth=auth)
    carol, dave, root = (username_of(request(name)) for name in ("carol", "dave", "root"))
    assert service.role(carol) is Role.DESIGNER and service.role(root) is Role.ADMIN
    views = list(service.run_loop(carol, "carol's lighthouse", {"rounds": 1, "steps": 1}))
    session_id = views[-1].session_id
    assert [s["id"] for s in service.list_sessions(carol)] == [session_id]
    assert service.list_sessions(dave) == []
    with pytest.raises(NotFound):
        service.open_session(dave, session_id)


def test_data_lands_under_the_persistent_folder_on_a_space(monkeypatch):
    monkeypatch.delenv("RR_DATA_DIR", raising=False)
    monkeypatch.setenv("SPACE_ID", SPACE["SPACE_ID"])
    is_dir = rr_core.paths.Path.is_dir
    monkeypatch.setattr(rr_core.paths.Path, "is_dir", lambda self: str(self) == "/data" or is_dir(self))
    assert rr_core.paths.data_dir() == Path("/data/rationalrewards")
    from storage.db import database_url

    monkeypatch.delenv("RR_DATABASE_URL", raising=False)
    assert database_url().endswith("/data/rationalrewards/studio.sqlite3")


def test_a_space_without_a_profile_flag_chooses_one():
    assert plan_for(None, {**SPACE, "SPACE_HARDWARE": "a100-large"}).name == "task-bf16"


def test_a_space_with_sign_in_in_its_front_matter_signs_visitors_in_without_a_variable():
    """On a first push nobody has set RR_OAUTH yet: with `hf_oauth: true` (the platform then sets
    OAUTH_CLIENT_ID) the studio must not serve every visitor as the one local admin."""
    space = {**SPACE, "OAUTH_CLIENT_ID": "client-id"}
    assert AuthSettings.from_env(space).oauth
    assert not AuthSettings.from_env({**space, "RR_OAUTH": "0"}).oauth  # turned off on purpose
    assert not AuthSettings.from_env(SPACE).oauth  # no OAuth app on this Space: nothing to sign in with
    assert not AuthSettings.from_env({"OAUTH_CLIENT_ID": "client-id"}).oauth  # not a Space
    with pytest.raises(ValueError, match="RR_OAUTH must be 1 or 0"):
        AuthSettings.from_env({**space, "RR_OAUTH": "on"})
