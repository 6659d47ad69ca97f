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


def test_edit_configs_carry_the_reference_values():
    """The two edit RL configs as the reference trains them (values read from its published configs)."""
    qwen = load_rl_config(CONFIGS / "rl_qwen_image_edit.yaml")
    kontext = load_rl_config(CONFIGS / "rl_flux_kontext_edit.yaml")
    both_streams = {"to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"}
    for config, lr, steps, guidance in ((qwen, 3e-4, 10, 1.0), (kontext, 2e-4, 15, 2.5)):
        a = config.algorithm
        assert (a.learning_rate, config.sampling.steps, config.sampling.guidance) == (lr, steps, guidance)
        assert config.nft_timesteps() == steps - 1 and a.nft_noise_levels == "sampler"
        assert (a.std_scope, a.min_group_std, a.max_group_mean) == ("global", 0.05, 0.9)
        assert (a.policy_loss_scale, a.kl_beta, a.old_decay_per_step, a.old_decay_max, a.ema_decay) == \
            (5.0, 1e-4, 0.001, 0.5, 0.9)
        assert set(config.lora.target_modules) == both_streams and (config.lora.rank, config.lora.alpha) == (32, 64)
        assert config.sampling.group_size == 8 and config.critic.accept == "scores"
    assert not qwen.algorithm.nft_loss_cfg
