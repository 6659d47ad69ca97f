"""Each ZeroGPU call declares a duration from its own arguments that covers the call's work.

The declared durations are held against figures from outside the duration formula (never against
`GpuFigures`, the constants it is built from): a published FLUX.1 benchmark, the memory bandwidth of
ZeroGPU's card, the critic's shape and the weights the Space's plan moves into a call (studio.fit),
each scaled by a factor stated below. Lowering a figure in `GpuFigures` below what these imply, or a
plan that moves more weights per call, makes these tests fail.
"""

from __future__ import annotations

import pytest
from PIL import Image

from rr_core.critics.base import CritiqueRequest
from rr_core.errors import InvalidRequest
from rr_core.generators.base import GenerationRequest
from rr_core.model_ids import CRITIC_IDS
from rr_core.rubric import Task
from studio.fit import DEFAULT_LINEUP, model_gb
from studio.profile import plan_for
from ui import zerogpu
from ui.zerogpu import MAX_DURATION_S, QUOTA_COST, critique_seconds, generation_seconds

# What the Space's UI lets a visitor choose (app.py's sliders): steps 1-50, 1-4 candidates, 1024 px;
# a critique stops at the critic's max_new_tokens (2048 by default).
UI_STEPS = range(1, 51)
UI_CANDIDATES = range(1, 5)
CRITIQUE_TOKENS = (256, 1024, 2048)

# Reference figures, each from outside the formula:
FLUX_S_PER_STEP = 6.2 / 30
"""FLUX.1 at 1024x1024 in 16-bit on an RTX 4090: 30 steps, text encoding and VAE decode included, in
6.2 s (published benchmark). ZeroGPU's RTX Pro 6000 Blackwell is at least as fast per whole card."""
NF4_SLOWDOWN = 1.5
"""bitsandbytes NF4 dequantises each weight per matmul: at most about 1.5x a bf16 step (stated)."""
HALF_CARD_SLOWDOWN = 2.0
"""A `large` call gets half the card: at worst half its compute and bandwidth (stated)."""
PLATFORM_STRETCH = {"large": 1.5, "xlarge": 1.0}
"""The `spaces` package (0.51.3) multiplies a `large` call's declared duration by 1.5 on this card
(`duration_factor` in spaces/zero/configs.json) and leaves `xlarge` as declared."""
CARD_BANDWIDTH = 1.79e12
"""RTX Pro 6000 Blackwell memory bandwidth, bytes/s (1,792 GB/s GDDR7)."""
ROOFLINE_SHARE = 0.7
"""Share of the bandwidth roofline a batch-1 decode reaches (bench/README.md measured 70% on an H200)."""
PLAIN_GENERATE_OVERHEAD_S = 0.02
"""Python and kernel-launch cost per token of transformers' plain `generate` (no CUDA graphs on ZeroGPU)."""
KV_BYTES_PER_TOKEN = 2 * 36 * 8 * 128 * 2
"""Qwen3-VL-8B's text model: K and V, 36 layers, 8 KV heads of 128, bf16."""
CRITIQUE_CONTEXT_TOKENS = 2048
"""Prompt and image tokens of one critique request (stated, generous for one 1024x1024 image)."""
CRITIQUE_PREFILL_S = 2.0
"""Image encoding and prefill of a batch (stated; an 8B prefill of a few thousand tokens is well under)."""
WEIGHT_MOVE_BYTES_PER_S = 7e9
"""How fast a call's first use of a worker copies the resident weights in: NVMe-class disk, the slow
case when ZeroGPU's packed tensors are not in the page cache (PCIe itself is several times faster)."""


def space_plan():
    return plan_for(None, {"SPACE_ID": "me/studio", "SPACES_ZERO_GPU": "true"})


def move_in_s(plan) -> float:
    """Seconds to copy every resident model into a fresh worker (ZeroGPU moves them all per worker)."""
    weights_gb = DEFAULT_LINEUP.weights_gb(plan.quantize_critics, plan.quantize_generators)
    return weights_gb * 1e9 / WEIGHT_MOVE_BYTES_PER_S


def generation_work_s(plan, size: str, steps: int, candidates: int) -> float:
    step = FLUX_S_PER_STEP * (NF4_SLOWDOWN if plan.quantize_generators else 1.0)
    step *= HALF_CARD_SLOWDOWN if size == "large" else 1.0
    return move_in_s(plan) + steps * candidates * step


def critique_work_s(plan, size: str, batch: int, tokens: int) -> float:
    weights = model_gb(CRITIC_IDS[Task.T2I], plan.quantize_critics) * 1e9
    kv_read = batch * KV_BYTES_PER_TOKEN * (CRITIQUE_CONTEXT_TOKENS + tokens)  # at the last step, the most
    reads = (weights + kv_read) / CARD_BANDWIDTH / ROOFLINE_SHARE
    # the per-token overhead is CPU-side: a half card does not slow it
    per_token = reads * (HALF_CARD_SLOWDOWN if size == "large" else 1.0) + PLAIN_GENERATE_OVERHEAD_S
    return move_in_s(plan) + CRITIQUE_PREFILL_S + tokens * per_token


@pytest.mark.parametrize("size", sorted(QUOTA_COST))
def test_generation_duration_covers_the_reference_work_of_every_ui_setting(size):
    plan = space_plan()
    for steps in UI_STEPS:
        for candidates in UI_CANDIDATES:
            declared = generation_seconds(steps, candidates, 1024, 1024)
            granted = declared * PLATFORM_STRETCH[size]
            assert granted >= generation_work_s(plan, size, steps, candidates), (size, steps, candidates)


@pytest.mark.parametrize("size", sorted(QUOTA_COST))
def test_critique_duration_covers_the_reference_decode_of_each_batch(size):
    plan = space_plan()
    for batch in UI_CANDIDATES:
        for tokens in CRITIQUE_TOKENS:
            granted = critique_seconds(batch, tokens) * PLATFORM_STRETCH[size]
            assert granted >= critique_work_s(plan, size, batch, tokens), (size, batch, tokens)


def test_every_ui_setting_fits_one_call_on_the_size_the_space_uses():
    cost = QUOTA_COST[space_plan().gpu_size]
    for steps in UI_STEPS:
        for candidates in UI_CANDIDATES:
            declared = generation_seconds(steps, candidates, 1024, 1024)
            assert declared * cost <= MAX_DURATION_S, (steps, candidates)
    for batch in UI_CANDIDATES:
        assert critique_seconds(batch, 2048) * cost <= MAX_DURATION_S, batch


def test_generation_duration_follows_its_arguments():
    base = generation_seconds(4, 1, 1024, 1024)
    assert generation_seconds(8, 1, 1024, 1024) > base
    assert generation_seconds(4, 2, 1024, 1024) > base
    assert generation_seconds(4, 1, 512, 512) < base
    assert generation_seconds(None, 1) == generation_seconds(28, 1, 1024, 1024)  # the pipeline default


def test_critique_duration_follows_its_arguments():
    assert critique_seconds(2, 2048) > critique_seconds(1, 2048) > critique_seconds(1, 1024)


def test_the_decorated_calls_compute_their_duration_from_the_call_arguments():
    class Critic:
        settings = type("S", (), {"max_new_tokens": 1024})()

    key = zerogpu._register(Critic())
    request = GenerationRequest(prompt="a fox", steps=20, num_candidates=3, width=512, height=512)
    calls = zerogpu.GPU_CALLS["large"]
    assert calls["generate"].gpu_duration(key, request) == generation_seconds(20, 3, 512, 512)
    image = Image.new("RGB", (16, 16))
    requests = [CritiqueRequest(Task.T2I, "a fox", image)] * 3
    assert calls["critique_many"].gpu_duration(key, requests) == critique_seconds(3, 1024)
    assert calls["stream"].gpu_duration(key, requests[0]) == critique_seconds(1, 1024)


def test_a_call_too_long_for_one_lease_is_refused_with_the_setting_to_lower():
    class Generator:
        def generate(self, request):
            raise AssertionError("must not run")

    proxy = zerogpu.wrap("generator", Generator())
    with pytest.raises(InvalidRequest, match="lower the steps, the candidates per round or the image size"):
        proxy.generate(GenerationRequest(prompt="a fox", steps=200, num_candidates=16))


def test_an_xlarge_call_counts_twice_against_the_limit():
    class Critic:
        settings = type("S", (), {"max_new_tokens": 6000})()  # a long budget: 300-600 s for 4 critiques

        def critique_many(self, requests):
            raise AssertionError("must not run")

    image = Image.new("RGB", (16, 16))
    requests = [CritiqueRequest(Task.T2I, "a fox", image)] * 4
    declared = critique_seconds(4, 6000)
    assert MAX_DURATION_S / 2 < declared <= MAX_DURATION_S
    zerogpu._check(declared, "critique batch", "large")  # large: counted once, allowed
    with pytest.raises(InvalidRequest, match=r"on an `xlarge` GPU, which counts 2x.*lower the candidates"):
        zerogpu.wrap("critic", Critic(), "xlarge").critique_many(requests)
