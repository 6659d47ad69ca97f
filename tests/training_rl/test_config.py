from pathlib import Path

import pytest

from rr_core.generators.factory import backend_family
from training.config import ConfigError
from training.rl.config import load_rl_config, rl_config
from training.rl.prompts import load_prompts
from training.rl.trainer import SUPPORTED_FAMILIES, generator_config

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.mark.parametrize("name", ["rl_tiny", "rl_flux_t2i", "rl_flux_kontext_edit", "rl_qwen_image_edit",
                                  "rl_tiny_qwen_edit"])
def test_shipped_configs_load(name):
    config = load_rl_config(CONFIGS / f"{name}.yaml")
    assert config.reward_spec().keys_for(config.task)
    assert backend_family(generator_config(config, "cpu")) in SUPPORTED_FAMILIES  # the trainer takes it
    if name.startswith("rl_tiny"):
        assert load_prompts(config.data, config.task)


def test_tiny_config_finds_its_prompts_relative_to_the_file():
    config = load_rl_config(CONFIGS / "rl_tiny.yaml", ["max_steps=2"])
    assert Path(config.data).is_file() and config.max_steps == 2


def test_unknown_keys_and_bad_combinations_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="Unknown sampling setting\\(s\\): group_sise;"):
        rl_config({"data": "x.jsonl", "sampling": {"group_sise": 8}})
    with pytest.raises(ValueError, match="shared_noise"):
        rl_config({"data": "x.jsonl", "sampling": {"shared_noise": True}, "algorithm": {"name": "nft"}})
    with pytest.raises(ValueError, match="reward"):
        rl_config({"data": "x.jsonl", "reward": {"dimensions": ["sharpness"], "weights": [1.0, 2.0]}})
