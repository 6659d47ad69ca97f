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
