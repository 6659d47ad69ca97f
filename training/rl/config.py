"""The RL trainer's configuration: one dataclass per section, read from YAML, unknown keys rejected.

Every field is a plain value so a run is fully described by its YAML file, which the trainer copies
into the output folder next to the checkpoints (the reward's dimensions and weights included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rr_core.critics.factory import CRITIC_KINDS, with_transport
from rr_core.reward import RewardSpec
from rr_core.config import ConfigError, from_mapping, load_config, to_mapping
from training.rl.advantages import STD_SCOPES
from training.rl.lora import LORA_INITS
from training.rl.rewards import ACCEPT

ALGORITHMS = ("nft", "grpo")
NOISE_LEVELS = ("sampler", "uniform")
REFERENCE_TIMESTEP_FRACTION = 0.99
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class CriticSection:
    """Which critic scores the rollouts."""

    kind: str = "tiny"
    """A kind of rr_core.critics.factory: transformers (in process), openai (a vLLM / OpenAI-compatible
    server), tiny (offline random weights) or adapter (a LoRA critic on its base model)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The backend's own config (TransformersCriticConfig / OpenAICriticConfig keys)."""
    retries: int = 2
    """Extra critique attempts for images whose critique does not count (see `accept`)."""
    accept: str = "scores"
    """Which critiques give a reward: scores (every dimension read, the refinement section may be cut
    off, as the reference) or complete (parse status ok, refined request included)."""
    timeout_s: float | None = None
    """Kind openai: the total seconds one critique may take, its HTTP retries included (unset:
    RR_CRITIC_TIMEOUT, else the critic's default). A hanging server then costs a step this long, not forever."""
    request_retries: int | None = None
    """Kind openai: extra HTTP attempts after a refused connection or a 5xx, within timeout_s (unset:
    RR_CRITIC_RETRIES, else the critic's default)."""

    def __post_init__(self) -> None:
        if self.accept not in ACCEPT:
            raise ConfigError(f"critic.accept must be one of {', '.join(ACCEPT)}, got {self.accept!r}.")
        if self.kind not in CRITIC_KINDS:
            raise ConfigError(f"critic.kind must be one of {', '.join(CRITIC_KINDS)}, got {self.kind!r}.")
        if self.retries < 0:
            raise ConfigError("critic.retries must be >= 0.")
        try:
            self.settings = with_transport(self.kind, self.settings, self.timeout_s, self.request_retries)
        except ValueError as exc:
            raise ConfigError(f"critic: {exc}") from None


@dataclass
class SamplingSection:
    """How rollouts are drawn."""

    group_size: int = 8
    """G: images per prompt (and source image); advantages are computed within each group."""
    prompts_per_step: int = 4
    """Groups sampled per RL step (per process)."""
    steps: int = 10
    """Denoising steps of a rollout."""
    guidance: float = 3.5
    """FLUX: the distilled guidance (ignored by a transformer without guidance embeddings). Qwen-Image: true
    classifier-free guidance's scale when > 1 (two transformer passes per step, in rollouts and updates alike)."""
    negative_prompt: str = " "
    """Qwen-Image's true-CFG negative prompt (" " as the model card and rr_core's generator use); FLUX ignores it."""
    width: int = 512
    height: int = 512
    shared_noise: bool = False
    """One initial noise for the whole group (only the SDE's noise then differs) instead of fresh noise."""
    noise_level: float = 0.7
    """Flow-GRPO's SDE noise scale (a in sigma_t = a * sqrt(t / (1 - t)))."""
    max_sequence_length: int = 512
    """Prompt tokens: FLUX's T5 tokens; Qwen-Image's text-to-image embeddings (the edit pipeline ignores it)."""


@dataclass
class AlgorithmSection:
    """The policy update."""

    name: str = "nft"
    """nft (DiffusionNFT) or grpo (Flow-GRPO)."""
    learning_rate: float = 3e-4
    """AdamW's learning rate (the reference: 3e-4 for Qwen-Image-Edit, 2e-4 for FLUX.1-Kontext)."""
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    inner_epochs: int = 1
    """Passes over one step's rollouts."""
    adv_clip_max: float = 5.0
    """Advantages are clipped to [-adv_clip_max, adv_clip_max]."""
    std_scope: str = "global"
    """global (the reference): normalize by the std of every valid reward of the step (all processes);
    group: by each group's own std."""
    min_group_std: float = 0.05
    """A group whose normaliser (std + 1e-4) is at most this is masked out of the update (the reference's
    0.05; with std_scope global the normaliser is the step's std, as in the reference)."""
    max_group_mean: float | None = 0.9
    """A group whose mean reward is at least this is masked out (the reference's 0.9); None: never."""
    kl_beta: float = 1e-4
    """Weight of the KL term to the reference (the transformer with the adapter disabled); the reference's 1e-4."""
    nft_beta: float = 1.0
    """DiffusionNFT's guidance strength between the old and the current policy."""
    policy_loss_scale: float = 5.0
    """DiffusionNFT: the policy loss is multiplied by this (the reference multiplies by adv_clip_max, 5)."""
    old_decay_per_step: float = 0.001
    """DiffusionNFT's old (sampling) policy after optimizer step n: old <- d * old + (1 - d) * current with
    d = min(old_decay_per_step * n, old_decay_max) (the reference: min(0.001 n, 0.5))."""
    old_decay_max: float = 0.5
    ema_decay: float = 0.9
    """A separate parameter average of the trained adapter, used for evaluation and for every saved
    adapter (the reference's 0.9, warmed up as min((1 + n) / (10 + n), ema_decay)); 0 turns it off."""
    nft_noise_levels: str = "sampler"
    """DiffusionNFT's training noise levels per image: sampler (the reference: distinct levels of the
    sampler's own schedule, in a random order per image) or uniform (random in [0.02, 0.98])."""
    nft_timesteps: int | None = None
    """Noise levels per image per inner epoch; None: int(0.99 x sampling.steps) as the reference
    (its timestep_fraction 0.99: 9 of 10 levels for Qwen-Image-Edit, 14 of 15 for FLUX.1-Kontext)."""
    nft_loss_cfg: bool = False
    """DiffusionNFT: train the true-CFG (guided) velocity of Qwen-Image when sampling.guidance > 1. The
    reference trains the plain conditional velocity (one pass) and samples Qwen-Image-Edit at guidance 1.0."""
    clip_range: float = 1e-4
    """Flow-GRPO: the ratio is clipped to [1 - clip_range, 1 + clip_range]."""
    timestep_fraction: float = 1.0
    """Flow-GRPO: share of the denoising steps trained on (the first ones, where noise matters most)."""

    def __post_init__(self) -> None:
        if self.name not in ALGORITHMS:
            raise ConfigError(f"algorithm.name must be one of {', '.join(ALGORITHMS)}, got {self.name!r}.")
        if self.std_scope not in STD_SCOPES:
            raise ConfigError(f"algorithm.std_scope must be global or group, got {self.std_scope!r}.")
        if self.nft_noise_levels not in NOISE_LEVELS:
            raise ConfigError(f"algorithm.nft_noise_levels must be sampler or uniform, got {self.nft_noise_levels!r}.")
        if self.nft_timesteps is not None and self.nft_timesteps < 1:
            raise ConfigError("algorithm.nft_timesteps must be at least 1 (or null for the reference's count).")
        if not 0 <= self.old_decay_max < 1 or self.old_decay_per_step < 0:
            raise ConfigError("algorithm.old_decay_max must be in [0, 1) and old_decay_per_step >= 0.")
        if self.policy_loss_scale <= 0:
            raise ConfigError("algorithm.policy_loss_scale must be positive.")
        if not 0 < self.timestep_fraction <= 1:
            raise ConfigError("algorithm.timestep_fraction must be in (0, 1].")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError("algorithm.ema_decay must be in [0, 1).")
        if self.adv_clip_max <= 0 or self.nft_beta <= 0:
            raise ConfigError("algorithm.adv_clip_max and algorithm.nft_beta must be positive.")


@dataclass
class LoraSection:
    rank: int = 32
    alpha: int = 64
    target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj",
                                                               "add_k_proj", "add_v_proj", "to_add_out"])
    """Attention projections of both streams (image: to_*, text: add_*_proj / to_add_out), as the reference."""
    init_from: str | None = None
    """Start from saved LoRA weights (diffusers format folder) instead of zeros."""
    init_weights: str = "gaussian"
    """lora_A's initialisation: gaussian (the reference) or kaiming (peft's default); lora_B starts at zero."""

    def __post_init__(self) -> None:
        if self.init_weights not in LORA_INITS:
            raise ConfigError(f"lora.init_weights must be one of {', '.join(LORA_INITS)}, got {self.init_weights!r}.")


@dataclass
class EvalSection:
    every: int = 10
    """Score the held-out prompts every this many steps (0: never); also at step 0 and at the end."""
    data: str | None = None
    """Held-out prompts (JSONL / Parquet); None takes the first `num_prompts` training prompts."""
    num_prompts: int = 8
    images_per_prompt: int = 2
    seed: int = 1234
    collapse_fraction: float = 0.5
    """Warn when pixel std or diversity falls below this fraction of its value at the first evaluation."""
    min_delta: float = 0.02
    """Reward / dimension changes smaller than this are noise for the hacking watch."""


@dataclass
class RLConfig:
    """A whole RL run."""

    task: str = "t2i"
    generator: dict[str, Any] = field(default_factory=dict)
    """A GeneratorConfig mapping; model_id "tiny" takes the offline tiny pipeline of the task."""
    critic: CriticSection = field(default_factory=CriticSection)
    reward: dict[str, Any] = field(default_factory=dict)
    """RewardSpec: dimensions (None = all of the task), weights, require_all."""
    data: str = ""
    """Training prompts: storage's rl-prompts export (JSONL or Parquet) or any JSONL with prompt[, source_image]."""
    sampling: SamplingSection = field(default_factory=SamplingSection)
    algorithm: AlgorithmSection = field(default_factory=AlgorithmSection)
    lora: LoraSection = field(default_factory=LoraSection)
    eval: EvalSection = field(default_factory=EvalSection)
    output_dir: str = "runs/rl"
    max_steps: int = 100
    save_every: int = 10
    resume: bool = True
    """Continue from the latest checkpoint in output_dir when there is one."""
    seed: int = 0
    mixed_precision: str = "bf16"
    """no / bf16 / fp16 (accelerate); CPU runs use no."""
    gradient_checkpointing: bool = True
    log_every: int = 1
    wandb_project: str | None = None
    """Also log to Weights & Biases (when installed) under this project."""

    def __post_init__(self) -> None:
        if self.task not in ("t2i", "edit"):
            raise ConfigError(f"task must be t2i or edit, got {self.task!r}.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}.")
        if not self.data:
            raise ConfigError("data is empty: give a JSONL / Parquet file of training prompts.")
        if self.sampling.group_size < 2:
            raise ConfigError("sampling.group_size must be at least 2: advantages compare images of a group.")
        if self.algorithm.name == "nft" and self.sampling.shared_noise:
            raise ConfigError("DiffusionNFT samples with the deterministic sampler: shared_noise would make "
                              "every image of a group identical. Set sampling.shared_noise: false.")
        if (self.algorithm.name == "nft" and self.algorithm.nft_noise_levels == "sampler"
                and self.algorithm.nft_timesteps is not None and self.algorithm.nft_timesteps > self.sampling.steps):
            raise ConfigError(f"algorithm.nft_timesteps ({self.algorithm.nft_timesteps}) exceeds the sampler's "
                              f"{self.sampling.steps} noise levels (sampling.steps).")
        self.reward_spec()

    def nft_timesteps(self) -> int:
        """Noise levels each image is trained at per inner epoch (the reference's int(0.99 x steps) unless set)."""
        if self.algorithm.nft_timesteps is not None:
            return self.algorithm.nft_timesteps
        return max(1, int(self.sampling.steps * REFERENCE_TIMESTEP_FRACTION))

    def reward_spec(self) -> RewardSpec:
        try:
            return RewardSpec.from_dict(self.reward)
        except ValueError as exc:
            raise ConfigError(f"reward: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)


def load_rl_config(path: str | Path, overrides: list[str] | None = None) -> RLConfig:
    """Read a YAML config; `overrides` are "section.key=value" strings applied before validation.

    Relative data paths that do not exist from the working directory are taken relative to the file.
    """
    config = load_config(RLConfig, path, overrides)
    base = Path(path).resolve().parent
    if not Path(config.data).exists() and (base / config.data).exists():
        config.data = str(base / config.data)
    if config.eval.data and not Path(config.eval.data).exists() and (base / config.eval.data).exists():
        config.eval.data = str(base / config.eval.data)
    return config


def rl_config(values: dict[str, Any]) -> RLConfig:
    """An RLConfig from a nested mapping (the YAML layout), unknown keys rejected."""
    return from_mapping(RLConfig, values)
