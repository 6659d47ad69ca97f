"""The ZeroGPU plan fits the memory of the call size it asks for, computed from the models' parameter counts.

The footprint is recomputed here from the recorded parameter counts and plain byte rates (bf16 2 bytes,
NF4 4.5 bits), not taken from the planner, so a plan that asked for more than its size holds fails.
"""

from __future__ import annotations

import pytest

from rr_core.model_ids import CRITIC_IDS, EDIT_ID, QWEN_IMAGE_EDIT_ID, TEXT_TO_IMAGE_ID
from rr_core.presets import resolve_preset
from rr_core.rubric import Task
from studio.fit import HEADROOM_GB, MODEL_WEIGHTS
from studio.profile import plan_for

ZERO = {"SPACE_ID": "me/studio", "SPACES_ZERO_GPU": "true"}
DOCUMENTED_GB = {"large": 48, "xlarge": 96}  # hub docs, spaces-zerogpu.md "Technical Specifications"


def weights_gb(model_id: str, four_bit: bool) -> float:
    total = 0.0
    for part in MODEL_WEIGHTS[model_id]:
        if four_bit and part.quantizable:
            total += (part.params - part.kept_params) * 4.5 / 8 + part.kept_params * 2
        else:
            total += part.params * 2
    return total / 1e9


def resident_gb(plan, critics=tuple(CRITIC_IDS.values()), generators=(TEXT_TO_IMAGE_ID, EDIT_ID)) -> float:
    """Everything loaded at start: ZeroGPU copies every model placed on "cuda" into each call."""
    assert plan.residency == "all" and plan.load_at_start
    return (sum(weights_gb(c, plan.quantize_critics) for c in critics)
            + sum(weights_gb(g, plan.quantize_generators) for g in generators))


def test_the_recorded_sizes_match_the_published_weights():
    assert weights_gb(CRITIC_IDS[Task.T2I], False) == pytest.approx(17.5, abs=0.3)  # 8.77 B in bf16
    assert weights_gb(TEXT_TO_IMAGE_ID, False) == pytest.approx(33.7, abs=0.5)  # transformer 23.8 + T5 9.5...
    assert 6 <= weights_gb(CRITIC_IDS[Task.T2I], True) <= 7.5
    all_bf16 = 2 * weights_gb(CRITIC_IDS[Task.T2I], False) + 2 * weights_gb(TEXT_TO_IMAGE_ID, False)
    assert all_bf16 > DOCUMENTED_GB["xlarge"]  # why the old all-bf16 plan could not run


def test_the_zerogpu_plan_fits_the_call_size_it_asks_for():
    plan = plan_for(None, ZERO)
    assert plan.name == "zerogpu" and plan.zero_gpu
    assert plan.gpu_size in DOCUMENTED_GB
    assert resident_gb(plan) + HEADROOM_GB <= DOCUMENTED_GB[plan.gpu_size], plan.reason
    assert not plan.cpu_offload  # ZeroGPU moves the weights per call itself
    assert f"`{plan.gpu_size}`" in plan.reason and "GB" in plan.reason


def test_it_keeps_the_critics_in_bf16_when_a_whole_card_holds_them():
    plan = plan_for(None, ZERO)
    assert (plan.quantize_critics, plan.quantize_generators, plan.gpu_size) == (False, True, "xlarge")
    preset = resolve_preset("rationalrewards", env={}, plan=plan)
    assert {s["quantization"] for s in preset.critic_settings.values()} == {"none"}
    assert all(g.quantize_4bit and not g.cpu_offload for g in preset.generators.values())


@pytest.mark.parametrize("reported", ["74625056768", "60000000000", "101973950464"])
def test_the_platform_memory_variable_can_only_lower_the_budget(reported):
    plan = plan_for(None, {**ZERO, "ZEROGPU_CUDA_TOTAL_MEMORY": reported})
    budget = min(DOCUMENTED_GB[plan.gpu_size], int(reported) / 1e9)
    assert resident_gb(plan) + HEADROOM_GB <= budget, plan.reason


def test_an_h200_slice_report_drops_to_4bit_everywhere():
    plan = plan_for(None, {**ZERO, "ZEROGPU_CUDA_TOTAL_MEMORY": "74625056768"})  # spaces' own default
    assert plan.quantize_critics and plan.quantize_generators and plan.gpu_size == "xlarge"


def test_sizes_of_overridden_models_are_counted():
    env = {**ZERO, "RR_EDIT_MODEL": QWEN_IMAGE_EDIT_ID}
    plan = plan_for(None, env)
    assert resident_gb(plan, generators=(TEXT_TO_IMAGE_ID, QWEN_IMAGE_EDIT_ID)) + HEADROOM_GB \
        <= DOCUMENTED_GB[plan.gpu_size], plan.reason
    unknown = plan_for(None, {**ZERO, "RR_T2I_MODEL": "me/my-flux"})
    assert "RR_T2I_MODEL=me/my-flux" in unknown.reason


def test_a_size_that_holds_no_plan_is_refused_at_start():
    with pytest.raises(ValueError, match=r"No ZeroGPU plan fits: .*large 48 GB"):
        plan_for(None, {**ZERO, "RR_ZEROGPU_SIZE": "large"})
    with pytest.raises(ValueError, match="RR_ZEROGPU_SIZE must be one of"):
        plan_for(None, {**ZERO, "RR_ZEROGPU_SIZE": "huge"})


def test_every_size_the_planner_may_choose_has_decorated_calls():
    from studio.fit import ZEROGPU_SIZES
    from ui.zerogpu import GPU_CALLS, QUOTA_COST

    assert set(ZEROGPU_SIZES) == set(QUOTA_COST) == set(GPU_CALLS)


def test_with_a_critic_server_only_the_generators_are_loaded_and_fit_a_large_call():
    """Preset auto uses a configured critic server, so the critics take no GPU memory: the plan counts
    the generators only (and so keeps them in bf16 where, with the critics, it had to quantize them)."""
    from studio.fit import fit_zerogpu
    from studio.profile import plan_for

    from studio.fit import DEFAULT_LINEUP, model_gb

    served = fit_zerogpu({}, remote_critics=True)
    generators_bf16 = sum(model_gb(g, False) for g in DEFAULT_LINEUP.generators)
    assert served.weights_gb == pytest.approx(generators_bf16)  # the two 8B critics are not counted
    assert not served.quantize_generators and "four" not in served.summary and "generators in bf16" in served.summary
    assert served.weights_gb + 8 <= {"large": 48, "xlarge": 96}[served.gpu_size]
    env = {"SPACES_ZERO_GPU": "true", "SPACE_ID": "me/studio", "RR_CRITIC_URL": "http://critic:8000/v1"}
    plan = plan_for(None, env, remote_critics=True)
    assert plan.gpu_size == served.gpu_size and "critic server" in plan.reason


def test_with_a_critic_server_a_large_call_holds_the_generators_in_4bit():
    from studio.fit import fit_zerogpu

    fit = fit_zerogpu({"RR_ZEROGPU_SIZE": "large"}, remote_critics=True)
    assert fit.gpu_size == "large" and fit.quantize_generators and fit.weights_gb + 8 <= 48
    with pytest.raises(ValueError, match="four models need"):
        fit_zerogpu({"RR_ZEROGPU_SIZE": "large"})
