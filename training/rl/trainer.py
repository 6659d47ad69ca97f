"""The RL trainer: rollouts -> critic rewards -> group advantages -> DiffusionNFT or Flow-GRPO update.

`RLTrainer.train()` composes named steps; each step reads top to bottom:
    1. pick prompts, 2. sample G images per prompt, 3. critique them, 4. advantages,
    5. update the LoRA, 6. log, evaluate held-out prompts, checkpoint.
Multi-GPU: run under `accelerate launch`; each process samples its own share of the step's prompts.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from rr_core.generators.base import GeneratorConfig, UnsupportedGenerator
from rr_core.rubric import Task
from training.rl.advantages import compute_advantages, global_reward_std, group_key
from training.rl.config import RLConfig
from training.rl.lora import (
    OLD,
    TRAINED,
    AdapterAverage,
    adapter_tensors,
    add_adapters,
    old_decay,
    save_diffusers_lora,
    update_old,
    use_adapter,
)
from training.rl.losses import grpo_loss, nft_loss, optimality
from training.rl.models import ModelConditioning, adapter_for
from training.rl.prompts import PromptItem, load_prompts
from training.rl.rewards import RewardBatch, RewardScorer
from training.rl.sampling import Rollout, gaussian_kl, sample, sde_step
from training.rl.watch import HackingWatch, image_stat_values, stats_of

logger = logging.getLogger(__name__)

SUPPORTED_FAMILIES = ("text_to_image", "flux_kontext", "qwen_image_edit")
NFT_T_MIN, NFT_T_MAX = 0.02, 0.98  # DiffusionNFT's training noise levels, away from the singular ends


@dataclass
class Group:
    """One prompt's G rollouts with everything the update needs."""

    item: PromptItem
    cond: ModelConditioning
    rollout: Rollout
    images: list[Image.Image]


def used_work(groups: list[Group], used: torch.Tensor) -> list[tuple[Group, torch.Tensor, torch.Tensor]]:
    """Per group with any used image: (group, its used indices within the group, their rows in the step)."""
    work, offset = [], 0
    for group in groups:
        idx = torch.nonzero(used[offset:offset + len(group.images)]).flatten()
        if len(idx):
            work.append((group, idx, idx + offset))
        offset += len(group.images)
    return work


def build_critic(config: RLConfig):
    """The critic the config names, from the one critic factory (the reward rule is RewardScorer's, not the critic's)."""
    from rr_core.critics.factory import build_critic as build

    return build(config.critic.kind, {"tasks": (config.task,), **config.critic.settings})


def generator_config(config: RLConfig, device: str) -> GeneratorConfig:
    """The generator section with the device; model_id "tiny" is the tiny offline pipeline of the task / family."""
    values = {"task": config.task, **config.generator, "device": device}
    if values.get("model_id") == "tiny":
        from rr_core.generators.tiny import (
            ensure_tiny_edit,
            ensure_tiny_qwen_image_edit,
            ensure_tiny_text_to_image,
        )

        if values.get("family") == "qwen_image_edit":
            values["model_id"] = str(ensure_tiny_qwen_image_edit())
        else:
            values["model_id"] = str(ensure_tiny_edit() if Task.parse(config.task) is Task.EDIT
                                     else ensure_tiny_text_to_image())
    return GeneratorConfig.from_dict(values)


class RLTrainer:
    """Owns the pipeline, the adapters, the optimizer, the critic and the logs of one run."""

    def __init__(self, config: RLConfig, critic: Any | None = None, accelerator: Any | None = None,
                 pipeline: Any | None = None) -> None:
        """`critic` and `pipeline` replace the configured ones (tests, benchmarks at synthetic shapes)."""
        from accelerate import Accelerator

        from rr_core.generators.factory import BACKENDS, backend_family

        self.config = config
        self.task = Task.parse(config.task)
        # 1. Devices and precision.
        self.accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision)
        self.device = self.accelerator.device
        self.out = Path(config.output_dir)
        # 2. The pipeline, its model adapter and the LoRA adapters (trained, and NFT's old copy).
        gen_config = generator_config(config, str(self.device))
        if backend_family(gen_config) not in SUPPORTED_FAMILIES:
            raise UnsupportedGenerator(
                f"RL supports the {', '.join(SUPPORTED_FAMILIES)} families; {backend_family(gen_config)} has no "
                "model adapter yet (training/rl/models.py)."
            )
        self.generator = BACKENDS[backend_family(gen_config)](gen_config, pipeline=pipeline)
        self.pipeline = self.generator.pipeline
        self.pipeline.set_progress_bar_config(disable=True)
        for name in ("vae", "text_encoder", "text_encoder_2"):
            module = getattr(self.pipeline, name, None)
            if module is not None:
                module.requires_grad_(False)
        transformer = self.pipeline.transformer
        torch.manual_seed(config.seed)  # peft draws lora_A from the global generator
        self.params = add_adapters(transformer, config.lora.rank, config.lora.alpha, config.lora.target_modules,
                                   with_old=config.algorithm.name == "nft", init_from=config.lora.init_from,
                                   pipeline_class=type(self.pipeline), init_weights=config.lora.init_weights)
        self.average = (AdapterAverage(transformer, config.algorithm.ema_decay)
                        if config.algorithm.ema_decay > 0 else None)
        self.updates = 0  # optimizer steps so far: the clock of the old policy's decay and of the average
        if config.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        self.optimizer = torch.optim.AdamW(self.params, lr=config.algorithm.learning_rate,
                                           weight_decay=config.algorithm.weight_decay)
        prepared, self.optimizer = self.accelerator.prepare(transformer, self.optimizer)
        self.transformer = self.accelerator.unwrap_model(prepared)
        self.model = adapter_for(self.pipeline, config.sampling.max_sequence_length, config.sampling.negative_prompt)
        self.model.transformer = prepared
        # 3. Rewards, data and the watch.
        self.spec = config.reward_spec()
        self.scorer = RewardScorer(critic if critic is not None else build_critic(config), self.spec, self.task,
                                   config.critic.retries, config.critic.accept)
        self.prompts = load_prompts(config.data, self.task)
        self.eval_prompts = (load_prompts(config.eval.data, self.task) if config.eval.data
                             else self.prompts)[: config.eval.num_prompts]
        self.watch = HackingWatch(config.eval.collapse_fraction, config.eval.min_delta)
        self.step = 0
        self.writer = None
        self.wandb = None
        sampling = config.sampling
        self.sigmas = self.model.sigmas(sampling.steps, sampling.height, sampling.width)

    # 1. Prompts --------------------------------------------------------------------------------

    def pick_prompts(self, step: int) -> list[PromptItem]:
        """This process's share of the step's prompts; the same on every run of the same seed and step."""
        per_process = self.config.sampling.prompts_per_step
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        rng = random.Random(self.config.seed * 1_000_003 + step)
        order = [rng.randrange(len(self.prompts)) for _ in range(per_process * world)]
        return [self.prompts[i] for i in order[rank * per_process:(rank + 1) * per_process]]

    # 2. Rollouts -------------------------------------------------------------------------------

    def rollout(self, item: PromptItem, generator: torch.Generator, count: int, sde: bool,
                adapter: str = TRAINED) -> Group:
        """`count` images for one prompt (and source) with the given adapter."""
        s = self.config.sampling
        cond = self.model.encode(item.prompt, item.source_image, count, s.height, s.width, s.guidance)
        noise = self.model.noise(1 if s.shared_noise else count, s.height, s.width, generator)
        noise = noise.expand(count, -1, -1)  # (G, S, C)
        with use_adapter(self.transformer, adapter), self.accelerator.autocast():
            result = sample(self.model, cond, noise, self.sigmas, sde, s.noise_level, generator)
        return Group(item, cond, result, self.model.decode(result.final, s.height, s.width))

    # 3. Rewards --------------------------------------------------------------------------------

    def score(self, groups: list[Group]) -> RewardBatch:
        prompts, images, sources = [], [], []
        for group in groups:
            prompts += [group.item.prompt] * len(group.images)
            images += group.images
            sources += [group.item.source_image] * len(group.images)
        return self.scorer.score(prompts, images, sources)

    # 5. Updates --------------------------------------------------------------------------------

    def _forward(self, latents: torch.Tensor, sigma: torch.Tensor, cond: ModelConditioning) -> torch.Tensor:
        with self.accelerator.autocast():
            return self.model.forward(latents, sigma, cond)

    def nft_levels(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, K) training noise levels: K distinct sampler levels per image in a random order (the
        reference), or K uniform draws in [NFT_T_MIN, NFT_T_MAX]; K = config.nft_timesteps()."""
        k = self.config.nft_timesteps()
        if self.config.algorithm.nft_noise_levels == "uniform":
            return torch.rand(count, k, generator=generator) * (NFT_T_MAX - NFT_T_MIN) + NFT_T_MIN
        levels = self.sigmas[: self.config.sampling.steps].float()  # (T,) the sampler's levels, 0 left out
        order = torch.stack([torch.randperm(len(levels), generator=generator)[:k] for _ in range(count)])
        return levels[order]  # (count, K)

    def nft_update(self, groups: list[Group], advantages: torch.Tensor, used: torch.Tensor,
                   generator: torch.Generator) -> dict[str, float]:
        """DiffusionNFT on the clean samples: noise levels, old/reference velocities, then backward.

        The loss is a mean over every used image and noise level (each group weighted by its used
        images, as the reference's masked mean), times `policy_loss_scale`.
        """
        a = self.config.algorithm
        work = used_work(groups, used)
        n_used = sum(len(idx) for _, idx, _ in work)
        k = self.config.nft_timesteps()
        totals = {"loss": 0.0, "policy": 0.0, "kl": 0.0}
        micro = 0
        for group, idx, rows in work:
            x0 = group.rollout.final[idx].float()  # (b, S, C)
            cond = group.cond.take(idx.to(group.cond.prompt_embeds.device))
            if not a.nft_loss_cfg:
                cond = cond.without_cfg()  # the reference trains the conditional velocity, one pass
            adv = advantages[rows].to(x0.device)
            r = optimality(adv, a.adv_clip_max)
            levels = self.nft_levels(len(idx), generator)  # (b, K)
            for j in range(k):
                t = levels[:, j].to(x0.device)
                eps = torch.randn(x0.shape, generator=generator).to(x0.device)
                xt = (1 - t.view(-1, 1, 1)) * x0 + t.view(-1, 1, 1) * eps  # (b, S, C)
                with torch.no_grad():
                    with use_adapter(self.transformer, OLD):
                        v_old = self._forward(xt, t, cond)
                    v_ref = None
                    if a.kl_beta > 0:
                        with use_adapter(self.transformer, None):
                            v_ref = self._forward(xt, t, cond)
                v = self._forward(xt, t, cond)
                parts = nft_loss(v, v_old, x0, xt, t, r, a.nft_beta, v_ref, a.kl_beta, a.policy_loss_scale)
                self.accelerator.backward(parts.loss * len(idx) / (n_used * k))
                micro += 1
                for key, value in (("loss", parts.loss), ("policy", parts.policy), ("kl", parts.kl)):
                    totals[key] += float(value.detach())
        return {k: v / max(micro, 1) for k, v in totals.items()}

    def grpo_update(self, groups: list[Group], advantages: torch.Tensor, used: torch.Tensor) -> dict[str, float]:
        """Flow-GRPO on the recorded SDE trajectories: re-evaluate each step's log-prob, clipped ratio, KL."""
        a, s = self.config.algorithm, self.config.sampling
        steps = max(1, math.ceil(s.steps * a.timestep_fraction))
        sigma_max = float(self.sigmas[1])
        work = used_work(groups, used)
        totals = {"loss": 0.0, "policy": 0.0, "kl": 0.0, "ratio": 0.0, "clipfrac": 0.0}
        micro = 0
        for group, idx, rows in work:
            traj, old_lp = group.rollout.latents[idx], group.rollout.log_probs[idx]  # (b, T+1, S, C), (b, T)
            cond = group.cond.take(idx.to(group.cond.prompt_embeds.device))
            adv = advantages[rows].to(traj.device)
            for j in range(steps):
                sigma = self.sigmas[j].expand(len(idx)).to(traj.device)
                sigma_next = self.sigmas[j + 1].expand(len(idx)).to(traj.device)
                kl = None
                if a.kl_beta > 0:
                    with torch.no_grad(), use_adapter(self.transformer, None):
                        v_ref = self._forward(traj[:, j], sigma, cond)
                    ref = sde_step(v_ref, traj[:, j], sigma, sigma_next, sigma_max, s.noise_level, traj[:, j + 1])
                v = self._forward(traj[:, j], sigma, cond)
                step = sde_step(v, traj[:, j], sigma, sigma_next, sigma_max, s.noise_level, traj[:, j + 1])
                if a.kl_beta > 0:
                    kl = gaussian_kl(step.mean, ref.mean, step.std)
                parts = grpo_loss(step.log_prob, old_lp[:, j], adv, a.clip_range, kl, a.kl_beta)
                self.accelerator.backward(parts.loss / (len(work) * steps))
                ratio = torch.exp(step.log_prob.detach() - old_lp[:, j])
                micro += 1
                totals["loss"] += float(parts.loss.detach())
                totals["policy"] += float(parts.policy)
                totals["kl"] += float(parts.kl)
                totals["ratio"] += float(ratio.mean())
                totals["clipfrac"] += float(((ratio - 1).abs() > a.clip_range).float().mean())
        return {k: v / max(micro, 1) for k, v in totals.items()}

    def update(self, groups: list[Group], advantages: torch.Tensor, used: torch.Tensor) -> dict[str, float]:
        """Inner epochs of one algorithm's loss, one optimizer step each; then NFT's EMA of the old adapter."""
        a = self.config.algorithm
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + self.step)
        metrics: dict[str, float] = {}
        if not bool(used.any()):
            logger.info("step %d: no group has signal; skipping the update", self.step)
            return {"skipped": 1.0}
        self.transformer.train()
        for _ in range(a.inner_epochs):
            if a.name == "nft":
                metrics = self.nft_update(groups, advantages, used, generator)
            else:
                metrics = self.grpo_update(groups, advantages, used)
            if self.accelerator.sync_gradients:
                metrics["grad_norm"] = float(self.accelerator.clip_grad_norm_(self.params, a.max_grad_norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.updates += 1
            if self.average is not None:
                self.average.update(self.transformer, self.updates)
        self.transformer.eval()
        if a.name == "nft":
            decay = old_decay(self.updates, a.old_decay_per_step, a.old_decay_max)
            update_old(self.transformer, decay)
            metrics["old_decay"] = decay
        return metrics

    def averaged(self):
        """A context in which the trained adapter holds the parameter average (evaluation, saving)."""
        return self.average.applied(self.transformer) if self.average is not None else nullcontext()

    # The step ---------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One RL step; returns its metrics."""
        c = self.config
        sde = c.algorithm.name == "grpo"
        generator = torch.Generator().manual_seed(c.seed * 1_000_003 + self.step * 7 + self.accelerator.process_index)
        # 1-2. Prompts and rollouts (NFT samples with the old adapter, as DiffusionNFT does).
        rollout_adapter = OLD if c.algorithm.name == "nft" else TRAINED
        self.transformer.eval()
        groups = [self.rollout(item, generator, c.sampling.group_size, sde, rollout_adapter)
                  for item in self.pick_prompts(self.step)]
        # 3. Rewards; failed critiques are None and masked.
        rewards = self.score(groups)
        # 4. Advantages per prompt and source image.
        keys = [group_key(g.item.prompt, g.item.source_image) for g in groups for _ in g.images]
        global_std = None
        if c.algorithm.std_scope == "global" and self.accelerator.num_processes > 1:
            global_std = global_reward_std(rewards.rewards,
                                           lambda t: self.accelerator.gather(t.to(self.accelerator.device)).cpu())
        adv = compute_advantages(rewards.rewards, keys, c.algorithm.std_scope, c.algorithm.adv_clip_max,
                                 global_std, c.algorithm.min_group_std, c.algorithm.max_group_mean)
        # 5. Update.
        metrics = self.update(groups, adv.values, adv.used)
        self.step += 1
        valid = [r for r in rewards.rewards if r is not None]
        metrics.update({
            "reward/mean": sum(valid) / len(valid) if valid else float("nan"),
            "reward/failure_share": rewards.failure_share,
            "reward/critic_attempts": float(rewards.attempts),
            "advantages/used_share": float(adv.used.float().mean()),
            "advantages/filtered_groups": float(adv.filtered_groups),
            **{f"reward/dim/{k}": v for k, v in rewards.dimension_means().items()},
        })
        return metrics

    # 6. Evaluation, logging, checkpoints -----------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Score the held-out prompts with the plain sampler and fixed seeds; save samples; run the watch.

        Each process takes every n-th prompt (n = number of processes) and the results are merged,
        so evaluation costs the same wall time on one GPU or eight; each prompt has its own seed, so
        the images do not depend on the process count.
        """
        e = self.config.eval
        self.transformer.eval()
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        mine = list(range(rank, len(self.eval_prompts), world))
        with self.averaged():
            groups = [self.rollout(self.eval_prompts[index], torch.Generator().manual_seed(e.seed + index),
                                   e.images_per_prompt, sde=False) for index in mine]
        rewards = self.score(groups) if groups else RewardBatch([])
        folder = self.out / "samples" / f"step-{self.step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        for index, group in zip(mine, groups):
            for j, image in enumerate(group.images):
                image.save(folder / f"prompt{index:03d}_{j}.png")
        merged, stds, distances = merge_shards(self._gather([(rewards, image_stat_values([g.images for g in groups]))]))
        valid = [r for r in merged.rewards if r is not None]
        reward = sum(valid) / len(valid) if valid else float("nan")
        dims = merged.dimension_means()
        stats = stats_of(stds, distances)
        warnings = self.watch.update(self.step, reward, dims, stats) if valid else []
        if self.writer is not None:
            for warning in warnings:
                self.writer.add_text("watch/warning", warning, self.step)
        return {"eval/reward": reward, "eval/failure_share": merged.failure_share,
                "eval/warnings": float(len(warnings)),
                **{f"eval/dim/{k}": v for k, v in dims.items()}, **{f"eval/{k}": v for k, v in stats.items()}}

    def _gather(self, local: list) -> list:
        """Every process's `local` list, concatenated in process order (the list itself on one process)."""
        if self.accelerator.num_processes == 1:
            return local
        from accelerate.utils import gather_object

        return gather_object(local)

    def log(self, metrics: dict[str, float]) -> None:
        if not self.accelerator.is_main_process:
            return
        for key, value in metrics.items():
            if self.writer is not None and not math.isnan(value):
                self.writer.add_scalar(key, value, self.step)
        if self.wandb is not None:
            self.wandb.log(metrics, step=self.step)
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"step": self.step, **metrics}) + "\n")

    def save(self) -> Path:
        """A checkpoint: the adapter in diffusers format plus the training state to resume from."""
        folder = self.out / "checkpoints" / f"step-{self.step:06d}"
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            with self.averaged():
                save_diffusers_lora(self.transformer, type(self.pipeline), tmp / "lora")
            state = {
                "step": self.step,
                "updates": self.updates,
                "average": self.average.state_dict() if self.average is not None else None,
                "trained": {k: v.detach().cpu() for k, v in adapter_tensors(self.transformer, TRAINED).items()},
                "old": {k: v.detach().cpu() for k, v in adapter_tensors(self.transformer, OLD).items()},
                "optimizer": self.optimizer.state_dict(),
                "watch": self.watch.state_dict(),
                "config": self.config.to_dict(),
            }
            torch.save(state, tmp / "state.pt")
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        self.accelerator.wait_for_everyone()
        return folder

    def latest_checkpoint(self) -> Path | None:
        folders = sorted((self.out / "checkpoints").glob("step-*[0-9]"))
        folders = [f for f in folders if (f / "state.pt").is_file()]
        return folders[-1] if folders else None

    def resume(self, folder: Path) -> None:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
        with torch.no_grad():
            for adapter in (TRAINED, OLD):
                tensors = adapter_tensors(self.transformer, adapter)
                for name, value in state[{TRAINED: "trained", OLD: "old"}[adapter]].items():
                    tensors[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.watch.load_state_dict(state["watch"])
        self.step = int(state["step"])
        self.updates = int(state.get("updates", self.step * self.config.algorithm.inner_epochs))
        if self.average is not None:
            if state.get("average"):
                self.average.load_state_dict(state["average"])
            else:  # a checkpoint from before the average existed: start it at the resumed weights
                self.average = AdapterAverage(self.transformer, self.config.algorithm.ema_decay)
        logger.info("resumed from %s at step %d", folder, self.step)

    def _open_logs(self) -> None:
        if not self.accelerator.is_main_process:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2, default=str))
        self.writer = SummaryWriter(str(self.out / "tensorboard"))
        if self.config.wandb_project:
            try:
                import wandb
            except ImportError:
                logger.warning("wandb_project is set but wandb is not installed; logging to TensorBoard only")
            else:
                self.wandb = wandb
                wandb.init(project=self.config.wandb_project, config=self.config.to_dict())

    def train(self) -> Path:
        """Run to max_steps (resuming when asked); return the folder of the final adapter."""
        from tqdm.auto import tqdm

        c = self.config
        self._open_logs()
        latest = self.latest_checkpoint() if c.resume else None
        if latest is not None:
            self.resume(latest)
        if self.step == 0 and c.eval.every:
            self.log(self.evaluate())
        bar = tqdm(total=c.max_steps, initial=self.step, desc="rl", disable=not self.accelerator.is_main_process)
        while self.step < c.max_steps:
            metrics = self.train_step()
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", fail=f"{metrics['reward/failure_share']:.0%}")
            if c.eval.every and (self.step % c.eval.every == 0 or self.step == c.max_steps):
                metrics.update(self.evaluate())
            if self.step % c.log_every == 0 or self.step == c.max_steps:
                self.log(metrics)
            if c.save_every and (self.step % c.save_every == 0 or self.step == c.max_steps):
                self.save()
        bar.close()
        final = self.out / "final"
        if self.accelerator.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            with self.averaged():
                save_diffusers_lora(self.transformer, type(self.pipeline), final)
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
        return final


def merge_shards(shards: list[tuple[RewardBatch, tuple[list[float], list[float]]]]
                 ) -> tuple[RewardBatch, list[float], list[float]]:
    """One RewardBatch and one set of image statistics from the evaluation shards of all processes."""
    merged = RewardBatch([])
    stds: list[float] = []
    distances: list[float] = []
    keys = {key for batch, _ in shards for key in batch.dimensions}
    merged.dimensions = {key: [] for key in sorted(keys)}
    for batch, (shard_stds, shard_distances) in shards:
        merged.rewards += batch.rewards
        merged.statuses += batch.statuses
        for key in merged.dimensions:
            merged.dimensions[key] += batch.dimensions.get(key, [None] * len(batch.rewards))
        stds += shard_stds
        distances += shard_distances
    return merged, stds, distances
