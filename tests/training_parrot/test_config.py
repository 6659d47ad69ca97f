"""Configs: the shipped YAML files load into documented dataclasses; unknown keys are rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.config import ConfigError, load_config
from training.parrot.__main__ import main
from training.parrot.pipeline import PipelineConfig

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.mark.parametrize("name", ["parrot_8b_80gb.yaml", "parrot_small_24gb.yaml", "parrot_tiny_cpu.yaml"])
def test_shipped_configs_load(name):
    config = load_config(PipelineConfig, CONFIGS / name)
    assert config.sources and config.distill.method in ("lora", "qlora")
    assert (config.teacher is not None) != (config.rule_critic() is not None)


def test_accelerate_configs_are_yaml():
    for name in ("accelerate_ddp.yaml", "accelerate_zero3.yaml", "accelerate_fsdp.yaml"):
        assert yaml.safe_load((CONFIGS / name).read_text())["distributed_type"]


def test_unknown_keys_and_bad_values_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="Unknown distill setting\\(s\\): epoch;"):
        load_config(PipelineConfig, CONFIGS / "parrot_8b_80gb.yaml", ["distill.epoch=3"])
    with pytest.raises(ValueError, match="method must be one of"):
        load_config(PipelineConfig, None, ["distill.method=dora"])
    overridden = load_config(PipelineConfig, CONFIGS / "parrot_8b_80gb.yaml", ["distill.max_steps=10"])
    assert overridden.distill.max_steps == 10 and overridden.distill.lora_r == 16


def test_cli_reports_config_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("work_dir: x\nteachr: {}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--config", str(bad)])
    assert exit_info.value.code == 2 and "teachr" in capsys.readouterr().err
