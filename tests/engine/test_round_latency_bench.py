"""bench/round_latency.py keeps running: both ways on the tiny models, and the real-shape builders.

The GPU run cannot happen in CI, so its model builders are checked here on the meta device (real
shapes, no weights) and, shrunk in width and depth but with FLUX.1's structure and bf16, through a
real round of both ways on the CPU.
"""

import pytest
import torch

from bench import round_latency
from bench.round_latency import (
    Bench,
    Models,
    flux_shapes,
    random_flux_pipeline,
    real_shape_models,
    tiny_models,
)


@pytest.mark.slow
def test_main_prints_both_ways_side_by_side(capsys):
    summary = round_latency.main(["--rounds", "1", "--new-tokens", "4"])
    out = capsys.readouterr().out
    assert "| per round (median) | loop (RefineLoop) | upstream (pipeline + generate) | loop / upstream |" in out
    for row in ("generation (s)", "critique (s)", "round wall time (s)", "inside the models (s)",
                "outside the models (ms)", "outside share of the round"):
        assert f"| {row} |" in out
    assert "| critique new tokens | 4 | 4 | |" in out
    assert "engine cost over upstream" in out and "torch " in out and "diffusers " in out
    for way in ("loop", "upstream"):
        values = summary[way]
        assert values["wall_s"] >= values["inside_s"] > 0
        assert values["generation_s"] > 0 and values["critique_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("variant, transformer_params", [("schnell", 11.891e9), ("dev", 11.901e9)])
def test_real_shape_builders_match_the_published_parameter_counts(variant, transformer_params):
    models = real_shape_models(variant, 24, device="meta")

    def count(module):
        return sum(p.numel() for p in module.parameters())

    pipeline = models.pipeline
    assert count(pipeline.transformer) == pytest.approx(transformer_params, rel=1e-3)
    assert count(pipeline.text_encoder_2) == pytest.approx(4.762e9, rel=1e-3)  # T5-XXL encoder
    assert count(pipeline.text_encoder) == pytest.approx(123.1e6, rel=1e-3)  # CLIP-L text model
    assert count(pipeline.vae) == pytest.approx(83.8e6, rel=1e-3)
    assert count(models.chat_model.model) == pytest.approx(8.767e9, rel=1e-3)  # Qwen3-VL-8B
    assert pipeline.transformer.config.guidance_embeds is (variant == "dev")
    assert all(p.dtype is torch.bfloat16 for p in pipeline.transformer.parameters())
    assert models.side == 1024


def test_flux_shapes_reject_bad_settings():
    with pytest.raises(ValueError, match="variant"):
        flux_shapes("pro")
    with pytest.raises(ValueError, match="t5_layers"):
        flux_shapes("schnell", t5_layers=0)
    shapes = flux_shapes("schnell")
    shapes["t5"]["d_model"] = 512
    with pytest.raises(ValueError, match="joint_attention_dim"):
        random_flux_pipeline(shapes, "meta", torch.bfloat16)


def shrunk_schnell() -> dict:
    """FLUX.1-schnell's structure (64 latent channels in, 128-wide heads, rope axes, scheduler) at a toy size."""
    shapes = flux_shapes("schnell", t5_layers=1)
    shapes["transformer"].update(num_layers=1, num_single_layers=1, num_attention_heads=1,
                                 joint_attention_dim=32, pooled_projection_dim=32)
    shapes["vae"].update(block_out_channels=(32, 32, 32, 32), layers_per_block=1)
    shapes["clip"].update(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                          projection_dim=32)
    shapes["t5"].update(d_model=32, d_kv=16, d_ff=37, num_heads=2)
    return shapes


@pytest.mark.slow
def test_a_round_of_both_ways_runs_on_the_real_shape_pipeline_builder():
    pipeline = random_flux_pipeline(shrunk_schnell(), "cpu", torch.bfloat16)
    models = Models(pipeline, tiny_models().chat_model, "cpu", 64, "shrunk schnell + tiny critic")
    args = round_latency.parse_args(["--new-tokens", "3", "--steps", "1"])
    bench = Bench(models, args)
    loop, upstream = bench.loop_round("a red fox"), bench.upstream_round("a red fox")
    assert loop.new_tokens == upstream.new_tokens == 3
    for timing in (loop, upstream):
        assert timing.wall_s >= timing.inside_s > 0
    # the clocks saw the pipeline: its call is most of a generation
    assert bench.pipeline_clock.seconds > 0
