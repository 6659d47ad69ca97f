"""Presets: `auto` picks by what the machine has, ids come from one place or the environment."""

import pytest

from rr_core.model_ids import CRITIC_IDS, EDIT_ID, TEXT_TO_IMAGE_ID
from rr_core.presets import resolve_preset
from rr_core.rubric import Task


def test_auto_without_gpu_or_url_is_tiny_with_a_banner(monkeypatch):
    monkeypatch.setattr("rr_core.presets.cuda_available", lambda: False)
    preset = resolve_preset("auto", env={})
    assert preset.name == "tiny" and preset.requested == "auto" and "RR_CRITIC_URL" in preset.banner
    assert all(settings["constrained"] for settings in preset.critic_settings.values())


def test_auto_with_a_critic_url_is_remote(monkeypatch):
    monkeypatch.setattr("rr_core.presets.cuda_available", lambda: False)
    preset = resolve_preset("auto", env={"RR_CRITIC_URL": "http://127.0.0.1:8000/v1", "RR_CRITIC_CONSTRAINED": "1"})
    assert preset.name == "remote" and preset.critic_kind == "openai"
    assert preset.critic_settings[Task.EDIT]["tasks"] == ("t2i", "edit")
    assert preset.critic_settings[Task.T2I]["constrained"] is True
    assert preset.generators[Task.T2I].model_id == TEXT_TO_IMAGE_ID


def test_auto_with_a_gpu_and_a_critic_url_uses_the_server(monkeypatch):
    """A configured critic server is an explicit choice: a GPU machine then keeps its memory for the
    generators instead of loading two 8B critics beside them (a Space with RR_CRITIC_URL set did)."""
    monkeypatch.setattr("rr_core.presets.cuda_available", lambda: True)
    preset = resolve_preset("auto", env={"RR_CRITIC_URL": "http://127.0.0.1:8000/v1"})
    assert preset.name == "remote" and preset.critic_kind == "openai"
    edit_only = resolve_preset("auto", env={"RR_CRITIC_EDIT_URL": "http://127.0.0.1:8001/v1"})
    assert edit_only.name == "remote"


def test_auto_with_a_gpu_is_rationalrewards_and_low_memory_fits_24_gb(monkeypatch):
    monkeypatch.setattr("rr_core.presets.cuda_available", lambda: True)
    preset = resolve_preset("auto", env={})
    assert preset.name == "rationalrewards"
    assert {t: s["model"] for t, s in preset.critic_settings.items()} == CRITIC_IDS
    assert preset.generators[Task.EDIT].model_id == EDIT_ID
    small = resolve_preset("rationalrewards", low_memory=True, env={})
    assert all(s["quantization"] == "4bit" for s in small.critic_settings.values())
    assert all(g.cpu_offload and g.quantize_4bit for g in small.generators.values())


def test_model_ids_from_the_environment_and_bad_names():
    preset = resolve_preset("rationalrewards", env={"RR_T2I_MODEL": "/models/my-flux",
                                                    "RR_CRITIC_T2I_MODEL": "/models/student"})
    assert preset.generators[Task.T2I].model_id == "/models/my-flux"
    assert preset.critic_settings[Task.T2I]["model"] == "/models/student"
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_preset("huge")
    with pytest.raises(ValueError, match="needs a critic URL"):
        resolve_preset("remote", env={})


# --- a critic per task, bounded remote critics -------------------------------------------------

def _requests():
    from rr_core.critics.base import CritiqueRequest
    from tests.critics.conftest import gradient, solid

    return (CritiqueRequest(Task.T2I, "a lighthouse at dusk", gradient(32, 32)),
            CritiqueRequest(Task.EDIT, "make the car red", gradient(32, 32), source_image=solid(32, 32, (0, 0, 200))))


def test_each_task_goes_to_its_own_critic_server():
    from rr_core.presets import Models
    from tests import critique_texts as texts
    from tests.critics.servers import MisbehavingPeer, answer

    t2i, edit = _requests()
    with MisbehavingPeer([(200, answer(texts.T2I_OK), 0.0)], name="rr-t2i") as t2i_peer, \
            MisbehavingPeer([(200, answer(texts.T2I_OK), 0.0)], name="rr-edit") as edit_peer:
        preset = resolve_preset("auto", env={"RR_CRITIC_T2I_URL": t2i_peer.url, "RR_CRITIC_EDIT_URL": edit_peer.url,
                                             "RR_CRITIC_EDIT_MODEL": "rr-edit"})
        assert preset.name == "remote"
        router = Models(preset).critic()
        router.critique_many([t2i, edit, t2i])
        router.critique(edit)
    assert len(t2i_peer.requests) == 2 and len(edit_peer.requests) == 2
    assert {r["model"] for r in t2i_peer.requests} == {"rr-t2i"}  # no model named: the server's first
    assert {r["model"] for r in edit_peer.requests} == {"rr-edit"}
    images = lambda r: sum(part.get("type") == "image_url" for part in r["messages"][1]["content"])  # noqa: E731
    assert [images(r) for r in t2i_peer.requests] == [1, 1] and [images(r) for r in edit_peer.requests] == [2, 2]
    assert preset.describe()["critic"] == {"t2i": t2i_peer.url, "edit": "rr-edit"}


def test_one_url_serves_both_tasks_and_a_task_url_overrides_it():
    both = resolve_preset("remote", env={"RR_CRITIC_URL": "http://both:8000", "RR_CRITIC_MODEL": "rr"})
    assert both.critic_settings[Task.T2I] == both.critic_settings[Task.EDIT]
    assert both.critic_settings[Task.T2I]["tasks"] == ("t2i", "edit")
    split = resolve_preset("remote", critic_url="http://both:8000", critic_edit_url="http://edit:8000",
                           env={"RR_CRITIC_EDIT_MODEL": "rr-edit"})
    assert split.critic_settings[Task.T2I]["base_url"] == "http://both:8000"
    assert split.critic_settings[Task.T2I]["tasks"] == ("t2i",)
    assert (split.critic_settings[Task.EDIT]["base_url"], split.critic_settings[Task.EDIT]["model"]) == (
        "http://edit:8000", "rr-edit")
    only_t2i = resolve_preset("remote", env={"RR_CRITIC_T2I_URL": "http://t2i:8000"})
    assert set(only_t2i.critic_settings) == {Task.T2I}


def test_the_critic_timeout_and_retries_reach_every_remote_critic():
    env = {"RR_CRITIC_URL": "http://c:8000", "RR_CRITIC_EDIT_URL": "http://e:8000",
           "RR_CRITIC_TIMEOUT": "9", "RR_CRITIC_RETRIES": "1"}
    preset = resolve_preset("remote", env=env)
    assert all((s["timeout_s"], s["max_retries"]) == (9.0, 1) for s in preset.critic_settings.values())
    flags = resolve_preset("remote", env=env, critic_timeout=3, critic_retries=0)
    assert all((s["timeout_s"], s["max_retries"]) == (3.0, 0) for s in flags.critic_settings.values())
    assert "timeout_s" not in resolve_preset("rationalrewards", env=env).critic_settings[Task.T2I]
    with pytest.raises(ValueError, match="critic timeout must be a positive"):
        resolve_preset("remote", env=env, critic_timeout=0)
    with pytest.raises(ValueError, match="retries must be >= 0"):
        resolve_preset("remote", env=env, critic_retries=-1)
    with pytest.raises(ValueError, match="RR_CRITIC_TIMEOUT"):
        resolve_preset("remote", env={**env, "RR_CRITIC_TIMEOUT": "a while"})


def test_a_hanging_start_up_check_holds_no_lock_a_generation_needs(monkeypatch):
    import threading
    import time

    from rr_core.errors import CriticUnavailable
    from rr_core.presets import Models
    from tests.critics.servers import MisbehavingPeer

    monkeypatch.setattr("rr_core.generators.factory.load_generator", lambda config: f"generator {config.task.value}")
    with MisbehavingPeer([(200, "{}", 0.0)], models_delay_s=20.0) as peer:
        studio = Models(resolve_preset("remote", env={"RR_CRITIC_URL": peer.url, "RR_CRITIC_TIMEOUT": "1"}))
        errors = []
        warm_up = threading.Thread(target=lambda: errors.append(_raised(studio.critic)))
        started = time.monotonic()
        warm_up.start()
        time.sleep(0.1)
        assert studio.generator("t2i") == "generator t2i"
        assert time.monotonic() - started < 0.5, "the generation waited on the critic server"
        warm_up.join(timeout=5)
        waited = time.monotonic() - started
    assert isinstance(errors[0], CriticUnavailable) and "GET /models" in str(errors[0])
    assert waited < 2.0, "the start-up check is bounded by the critic timeout (1 s), not the server's 20 s"


def _raised(call):
    try:
        call()
    except Exception as exc:
        return exc
    return None


def test_which_presets_critique_through_a_server():
    """app.py sizes the GPU plan by this rule; it is the one resolve_preset applies."""
    from rr_core.presets import uses_critic_server

    url = "http://127.0.0.1:8000/v1"
    assert uses_critic_server("auto", {"RR_CRITIC_URL": url})
    assert uses_critic_server("auto", {}, critic_edit_url=url)
    assert uses_critic_server("remote", {"RR_CRITIC_T2I_URL": url})
    assert not uses_critic_server("auto", {})
    assert not uses_critic_server("rationalrewards", {"RR_CRITIC_URL": url})
    assert not uses_critic_server("tiny", {}, critic_url=url)
