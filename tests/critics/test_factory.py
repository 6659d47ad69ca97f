"""The one critic factory: a kind plus that backend's settings -> a critic; presets, PARROT and RL use it."""

from __future__ import annotations

import pytest

from rr_core.critics import factory
from rr_core.critics.factory import CRITIC_KINDS, UnknownCriticKind, build_critic, critic_config
from rr_core.critics.openai_critic import OpenAICriticConfig
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.presets import Models, resolve_preset
from rr_core.rubric import Task
from tests.critics.conftest import solid


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(UnknownCriticKind, match="Unknown critic kind 'vllm'; choose one of transformers, openai"):
        critic_config("vllm", {})


@pytest.mark.parametrize("kind", ["transformers", "openai", "tiny"])
def test_unknown_settings_are_refused_not_ignored(kind):
    settings = {"base_url": "http://127.0.0.1:9"} if kind == "openai" else {"model": "some/critic"}
    with pytest.raises(ValueError, match="Unknown .* setting\\(s\\): temprature"):
        critic_config(kind, {**settings, "temprature": 0.1})


def test_settings_must_be_a_mapping():
    with pytest.raises(ValueError, match="must be a mapping"):
        critic_config("transformers", ["model", "x"])


def test_yaml_lists_become_the_configs_tuples():
    config = critic_config("openai", {"base_url": "http://127.0.0.1:9", "tasks": ["t2i", "edit"],
                                      "prompt_templates": ["a.txt"]})
    assert isinstance(config, OpenAICriticConfig)
    assert config.tasks == ("t2i", "edit") and config.prompt_templates == ("a.txt",)


def test_tiny_kind_is_the_tiny_critic_with_overrides(tiny_critic_path):
    config = critic_config("tiny", {"tasks": ["edit"], "max_new_tokens": 12}, tiny_critic_path.parent)
    assert isinstance(config, TransformersCriticConfig)
    assert config.model == str(tiny_critic_path) and config.constrained
    assert config.tasks == ("edit",) and config.max_new_tokens == 12


def test_adapter_kind_needs_the_adapter_and_its_base(tmp_path):
    with pytest.raises(ValueError, match="needs `adapter`"):
        critic_config("adapter", {"model": "base/model"})
    student = tmp_path / "student"
    student.mkdir()
    (student / "adapter_model.safetensors").write_bytes(b"weights")
    config = critic_config("adapter", {"model": "base/model", "adapter": str(student)})
    # Recorded as the adapter's name and content hash (rr_core.model_identity), never as its base.
    assert config.critic_id.startswith("student@") and config.critic_id != "base/model"


def test_tiny_critic_loads_and_critiques(tiny_critic_path):
    critic = build_critic("tiny", {"tasks": ["t2i"], "max_new_tokens": 8, "constrained": False},
                          tiny_critic_path.parent)
    assert isinstance(critic, TransformersCritic) and critic.tasks == frozenset({Task.T2I})
    from rr_core.critics.base import CritiqueRequest

    critique = critic.critique(CritiqueRequest("t2i", "a red square", solid(32, 32, (255, 0, 0))))
    assert critique.raw_text and critique.reward is None


@pytest.fixture
def recorded(monkeypatch):
    """Replace the factory's loader: every route must reach it with a kind and its settings."""
    calls = []

    def fake(kind, settings=None, cache_dir=None):
        calls.append((kind, dict(settings or {})))
        return critic_config(kind, settings, cache_dir)

    monkeypatch.setattr(factory, "build_critic", fake)
    return calls


def test_the_app_presets_load_through_the_factory(recorded):
    preset = resolve_preset("remote", critic_url="http://127.0.0.1:9", env={})
    Models(preset)._load_critic(preset.critic_settings[Task.T2I])
    assert recorded == [("openai", preset.critic_settings[Task.T2I])]


def test_parrot_specs_load_through_the_factory(recorded):
    from training.parrot.critics import BACKENDS, CriticSpec
    from training.parrot.critics import build_critic as parrot_build

    assert BACKENDS == CRITIC_KINDS
    parrot_build(CriticSpec("openai", {"base_url": "http://127.0.0.1:9"}))
    assert recorded == [("openai", {"base_url": "http://127.0.0.1:9"})]


def test_rl_config_loads_through_the_factory(recorded):
    from training.rl.config import rl_config
    from training.rl.trainer import build_critic as rl_build

    config = rl_config({"task": "edit", "data": "prompts.jsonl",
                        "critic": {"kind": "openai", "settings": {"base_url": "http://127.0.0.1:9"}}})
    rl_build(config)
    assert recorded == [("openai", {"tasks": ("edit",), "base_url": "http://127.0.0.1:9"})]


def test_rl_accepts_every_factory_kind():
    from training.rl.config import CriticSection

    for kind in CRITIC_KINDS:
        assert CriticSection(kind=kind).kind == kind
