"""The Qwen-Image adapter against diffusers' own pipelines, the SDE on the Qwen transformer, and a short
DiffusionNFT run on the tiny Qwen-Image-Edit pipeline whose adapter loads through rr_core.generators."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from rr_core.generators import GenerationRequest, GeneratorConfig, load_generator
from rr_core.generators.tiny import ensure_tiny_qwen_image_edit
from training.rl.config import rl_config
from training.rl.lora import TRAINED, adapter_tensors
from training.rl.models import adapter_for
from training.rl.models_qwen import LORA_TARGET_MODULES, QwenImageAdapter
from training.rl.sampling import sample, sde_step
from training.rl.trainer import RLTrainer

from .conftest import tiny_values

SIZE, STEPS, SEED, CFG = 64, 3, 11, 4.0


@pytest.fixture(scope="module")
def edit_pipeline():
    from diffusers import QwenImageEditPlusPipeline

    pipe = QwenImageEditPlusPipeline.from_pretrained(ensure_tiny_qwen_image_edit())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def source_image() -> Image.Image:
    """A 96 x 64 source (not square, so the condition and VAE sizes keep an aspect ratio to get right)."""
    pixels = np.linspace(0, 255, 96 * 64 * 3).reshape(64, 96, 3).astype(np.uint8)
    return Image.fromarray(pixels)


def pipeline_run(pipe, **kwargs) -> tuple[torch.Tensor, np.ndarray]:
    """The pipeline's final packed latents (caught by the step callback) and its decoded images."""
    caught = {}

    def keep(pipeline, step, timestep, values):
        caught["latents"] = values["latents"]
        return values

    images = pipe(num_inference_steps=STEPS, width=SIZE, height=SIZE, generator=torch.Generator().manual_seed(SEED),
                  output_type="np", callback_on_step_end=keep, **kwargs).images
    return caught["latents"], images


def adapter_run(adapter, cond) -> tuple[torch.Tensor, np.ndarray]:
    noise = adapter.noise(1, SIZE, SIZE, torch.Generator().manual_seed(SEED))
    rollout = sample(adapter, cond, noise, adapter.sigmas(STEPS, SIZE, SIZE), sde=False)
    images = adapter.decode(rollout.final, SIZE, SIZE)
    return rollout.final, np.stack([np.asarray(image, dtype=np.float32) / 255 for image in images])


@pytest.mark.slow
def test_edit_adapter_reproduces_the_edit_pipeline_with_true_cfg(edit_pipeline):
    adapter = adapter_for(edit_pipeline)
    assert isinstance(adapter, QwenImageAdapter) and adapter.is_edit
    source = source_image()
    expected_latents, expected = pipeline_run(edit_pipeline, image=[source], prompt="make it red",
                                              negative_prompt=" ", true_cfg_scale=CFG)
    cond = adapter.encode("make it red", source, 1, SIZE, SIZE, CFG)
    assert cond.img_shapes == [(1, 4, 4), (1, 832 // 16, 1248 // 16)]  # 96 x 64 at ~1024^2 for the VAE
    latents, images = adapter_run(adapter, cond)
    assert torch.allclose(latents, expected_latents, atol=1e-5), (latents - expected_latents).abs().max()
    assert np.abs(images - expected).max() <= 1 / 255 + 1e-6
    # The guidance and the source matter: without CFG, or with a blank source, the result differs.
    plain, _ = adapter_run(adapter, replace(cond, true_cfg_scale=1.0))
    blank, _ = adapter_run(adapter, replace(cond, source_latents=torch.zeros_like(cond.source_latents)))
    assert not torch.allclose(plain, latents, atol=1e-4) and not torch.allclose(blank, latents, atol=1e-4)


def test_text_to_image_adapter_reproduces_the_qwen_image_pipeline(edit_pipeline):
    from diffusers import QwenImagePipeline

    pipe = QwenImagePipeline(scheduler=edit_pipeline.scheduler, vae=edit_pipeline.vae,
                             text_encoder=edit_pipeline.text_encoder, tokenizer=edit_pipeline.tokenizer,
                             transformer=edit_pipeline.transformer)
    pipe.set_progress_bar_config(disable=True)
    adapter = adapter_for(pipe)
    assert not adapter.is_edit
    expected_latents, expected = pipeline_run(pipe, prompt="a red cat", negative_prompt=" ", true_cfg_scale=CFG)
    latents, images = adapter_run(adapter, adapter.encode("a red cat", None, 1, SIZE, SIZE, CFG))
    assert torch.allclose(latents, expected_latents, atol=1e-5), (latents - expected_latents).abs().max()
    assert np.abs(images - expected).max() <= 1 / 255 + 1e-6
    with pytest.raises(ValueError, match="no source image"):
        adapter.encode("a red cat", source_image(), 1, SIZE, SIZE, CFG)


def qwen_values(tmp_path, algorithm: str, **overrides) -> dict:
    values = tiny_values(tmp_path, algorithm, "edit", **overrides)
    values["generator"] = {"model_id": "tiny", "family": "qwen_image_edit", "dtype": "fp32"}
    values["sampling"].update(guidance=CFG)
    values["lora"]["target_modules"] = list(LORA_TARGET_MODULES)
    return values


@pytest.mark.slow
def test_sde_on_the_qwen_transformer_is_on_policy_and_trains_only_lora(tmp_path, bright_critic):
    trainer = RLTrainer(rl_config(qwen_values(tmp_path, "grpo", sampling__steps=2)), critic=bright_critic)
    assert isinstance(trainer.model, QwenImageAdapter)
    group = trainer.rollout(trainer.prompts[0], torch.Generator().manual_seed(0), 2, sde=True)
    traj, old_lp = group.rollout.latents, group.rollout.log_probs  # (2, T+1, S, C), (2, T)
    assert traj.shape[:2] == (2, 3) and old_lp.shape == (2, 2)
    assert group.cond.source_latents.shape[:2] == (2, 64 * 64)  # the 64 x 64 source at 1024 x 1024 for the VAE
    trainer.transformer.train()
    sigmas, total = trainer.sigmas, 0
    for j in range(2):
        sigma, sigma_next = sigmas[j].expand(2), sigmas[j + 1].expand(2)
        v = trainer.model.forward(traj[:, j], sigma, group.cond)
        step = sde_step(v, traj[:, j], sigma, sigma_next, float(sigmas[1]), 0.7, traj[:, j + 1])
        assert torch.allclose(torch.exp(step.log_prob - old_lp[:, j]), torch.ones(2), atol=1e-5)
        # The recorded step's log-density is that of the Gaussian N(mean, std^2) at the sample.
        gaussian = torch.distributions.Normal(step.mean, step.std.expand_as(step.mean))
        expected = gaussian.log_prob(traj[:, j + 1]).mean(dim=(1, 2))
        assert torch.allclose(step.log_prob, expected, atol=1e-4)
        total = total + step.log_prob.sum()
    total.backward()
    with_grad = {n for n, p in trainer.transformer.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in n and f".{TRAINED}." in n for n in with_grad)
    assert any("add_q_proj" in n for n in with_grad)  # the text stream's projections are trained too
    assert any(float(p.grad.abs().sum()) > 0 for n, p in trainer.transformer.named_parameters()
               if "lora_B" in n and p.grad is not None)


@pytest.mark.slow
def test_short_nft_run_writes_an_adapter_the_qwen_edit_generator_loads(tmp_path, bright_critic):
    values = qwen_values(tmp_path, "nft", sampling__steps=2, sampling__group_size=2, sampling__prompts_per_step=1,
                         eval__every=0, max_steps=2, save_every=0)
    trainer = RLTrainer(rl_config(values), critic=bright_critic)
    before = {k: v.detach().clone() for k, v in adapter_tensors(trainer.transformer, TRAINED).items()}
    final = trainer.train()
    after = adapter_tensors(trainer.transformer, TRAINED)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (final / "pytorch_lora_weights.safetensors").is_file()

    generator = load_generator(GeneratorConfig(task="edit", model_id=str(ensure_tiny_qwen_image_edit()),
                                               family="qwen_image_edit", device="cpu", dtype="fp32"))
    request = GenerationRequest(prompt="a red cat", seed=5, steps=2, width=SIZE, height=SIZE,
                                source_image=Image.new("RGB", (SIZE, SIZE), (90, 120, 200)))
    base = generator.generate(request)
    generator.load_lora(final)
    tuned = generator.generate(request)
    assert base[0].tobytes() != tuned[0].tobytes()
    generator.set_lora_scale(0.0)
    assert generator.generate(request)[0].tobytes() == base[0].tobytes()


def test_without_cfg_is_the_conditional_velocity(edit_pipeline):
    """The NFT loss trains Qwen-Image's plain conditional velocity, as the reference (one transformer pass)."""
    adapter = adapter_for(edit_pipeline)
    source = source_image()
    guided = adapter.encode("make it red", source, 1, SIZE, SIZE, CFG)
    plain = adapter.encode("make it red", source, 1, SIZE, SIZE, 1.0)
    latents = adapter.noise(1, SIZE, SIZE, torch.Generator().manual_seed(SEED))
    sigma = torch.tensor([0.6])
    with torch.no_grad():
        unguided = adapter.forward(latents, sigma, guided.without_cfg())
        assert torch.allclose(unguided, adapter.forward(latents, sigma, plain), atol=1e-6)
        assert not torch.allclose(unguided, adapter.forward(latents, sigma, guided), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("loss_cfg", [False, True])
def test_nft_update_uses_cfg_only_when_asked(tmp_path, bright_critic, loss_cfg):
    values = qwen_values(tmp_path, "nft", sampling__steps=2, sampling__group_size=2, sampling__prompts_per_step=1,
                         algorithm__nft_loss_cfg=loss_cfg, algorithm__nft_noise_levels="sampler",
                         algorithm__nft_timesteps=2)
    trainer = RLTrainer(rl_config(values), critic=bright_critic)
    group = trainer.rollout(trainer.prompts[0], torch.Generator().manual_seed(0), 2, sde=False)
    assert group.cond.true_cfg_scale == CFG  # rollouts are guided as sampling.guidance says
    seen = []
    forward = trainer.model.forward
    trainer.model.forward = lambda latents, sigma, cond: seen.append(cond.true_cfg_scale) or forward(latents, sigma, cond)
    trainer.nft_update([group], torch.tensor([1.0, -1.0]), torch.tensor([True, True]), torch.Generator().manual_seed(1))
    assert seen and set(seen) == {CFG if loss_cfg else 1.0}
