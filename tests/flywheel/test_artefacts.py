"""Trained artefacts load back without code and are recorded under their own names (issue 14 items 3, 4):
a PARROT student's adapter (served, or in process with --critic-adapter / RR_CRITIC_ADAPTER), the
grammar switch for an in-process critic, and RL LoRAs for the generators (--t2i-lora / --edit-lora)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rr_core.critics.transformers_critic import TransformersCriticConfig
from rr_core.model_identity import artefact_id, with_lora
from rr_core.presets import Artefacts, resolve_preset
from rr_core.rubric import Task
from rr_core.serve import served_name

ROOT = Path(__file__).resolve().parents[2]


def test_an_artefact_is_named_by_its_folder_and_content(tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"weights-1")
    name = artefact_id(folder)
    assert name.startswith("student@") and len(name.split("@")[1]) == 8
    copy = tmp_path / "elsewhere" / "student"
    shutil.copytree(folder, copy)
    assert artefact_id(copy) == name, "the same weights elsewhere are the same model"
    (folder / "adapter_model.safetensors").write_bytes(b"weights-2")
    assert artefact_id(folder) != name, "weights retrained into the same folder are another model"
    with pytest.raises(FileNotFoundError, match="No adapter or LoRA at"):
        artefact_id(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty folder"):
        artefact_id(tmp_path / "empty")


def test_a_served_student_reports_the_adapter_not_its_base(critic_adapter):
    base = "Qwen/Qwen3-VL-8B-Instruct"
    assert served_name(base, str(critic_adapter)) == artefact_id(critic_adapter) != base
    assert served_name(base) == base
    assert served_name(base, str(critic_adapter), "my-student") == "my-student"


def test_an_in_process_adapter_critic_is_recorded_under_the_adapter(critic_adapter):
    config = TransformersCriticConfig(model="base/model", adapter=str(critic_adapter))
    assert config.critic_id == artefact_id(critic_adapter)


def test_env_twins_load_the_adapter_the_grammar_and_the_loras(tmp_path, critic_adapter):
    lora = tmp_path / "rl-lora"
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_bytes(b"lora")
    env = {"RR_CRITIC_ADAPTER": str(critic_adapter), "RR_CRITIC_CONSTRAINED": "1",
           "RR_T2I_LORA": str(lora), "RR_EDIT_LORA": str(lora)}
    preset = resolve_preset("rationalrewards", env=env)
    base = json.loads((critic_adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    for settings in preset.critic_settings.values():
        assert settings["adapter"] == str(critic_adapter) and settings["model"] == base
        assert settings["constrained"] is True and settings["tasks"] == ("t2i", "edit")
    for task in Task:
        assert preset.generators[task].lora_path == str(lora)
    described = preset.describe()
    assert set(described["critic"].values()) == {artefact_id(critic_adapter)}
    assert described["generators"]["t2i"] == with_lora(preset.generators[Task.T2I].model_id, lora)
    assert described["generators"]["t2i"].endswith(f"+{artefact_id(lora)}")
    # Flags win over the environment; without either, nothing changes.
    assert resolve_preset("rationalrewards", env=env, artefacts=Artefacts(critic_constrained=False)) \
        .critic_settings[Task.T2I]["constrained"] is False
    plain = resolve_preset("rationalrewards", env={})
    assert "adapter" not in plain.critic_settings[Task.T2I] and plain.generators[Task.T2I].lora_path is None


def test_bad_artefacts_get_a_clear_error(tmp_path, critic_adapter):
    with pytest.raises(ValueError, match="critic adapter .*missing.* does not exist"):
        resolve_preset("rationalrewards", env={}, artefacts=Artefacts(critic_adapter=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="edit LoRA .* does not exist"):
        resolve_preset("rationalrewards", env={}, artefacts=Artefacts(edit_lora=str(tmp_path / "nope")))
    (tmp_path / "not-an-adapter").mkdir()
    with pytest.raises(ValueError, match="no adapter_config.json"):
        resolve_preset("rationalrewards", env={}, artefacts=Artefacts(critic_adapter=str(tmp_path / "not-an-adapter")))
    with pytest.raises(ValueError, match="rr_core.serve .*--adapter"):
        resolve_preset("remote", env={"RR_CRITIC_URL": "http://127.0.0.1:9"},
                       artefacts=Artefacts(critic_adapter=str(critic_adapter)))


@pytest.mark.slow
@pytest.mark.parametrize("command", [["app.py"], ["-m", "rr_core.refine"], ["-m", "studio.refine"]])
def test_every_front_end_has_the_flags(command):
    result = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in ("--critic-adapter", "--critic-constrained", "--t2i-lora", "--edit-lora"):
        assert flag in result.stdout
