"""The hardware profile: chosen from the Space's hardware (or asked for), applied to the preset, shown."""

from __future__ import annotations

import pytest

from rr_core.presets import Models, resolve_preset
from rr_core.rubric import Task
from studio.health import Health
from studio.profile import choose_profile, detect_hardware, plan_for, requested_profile


@pytest.mark.parametrize(("env", "profile"), [
    ({"SPACE_ID": "me/studio", "SPACES_ZERO_GPU": "true"}, "zerogpu"),
    ({"SPACE_ID": "me/studio", "SPACE_HARDWARE": "a10g-small"}, "task-4bit"),
    ({"SPACE_ID": "me/studio", "SPACE_HARDWARE": "l4x1"}, "task-4bit"),
    ({"SPACE_ID": "me/studio", "SPACE_HARDWARE": "a100-large"}, "task-bf16"),
    ({"SPACE_ID": "me/studio", "SPACE_HARDWARE": "t4-small"}, "remote-critic"),
    ({"SPACE_ID": "me/studio", "SPACE_HARDWARE": "cpu-basic"}, "cpu"),
])
def test_a_space_gets_the_largest_profile_its_hardware_holds(env, profile):
    plan = plan_for(None, env)
    assert plan is not None and plan.name == profile
    assert "chosen for" in plan.reason


def test_measured_gpu_memory_decides_without_a_flavour():
    assert plan_for("auto", {}, measured_gpu_gb=141).name == "all-bf16"
    assert plan_for("auto", {}, measured_gpu_gb=80).name == "task-bf16"
    assert plan_for("auto", {}, measured_gpu_gb=24).name == "task-4bit"
    assert plan_for("auto", {}, measured_gpu_gb=0).name == "cpu"


def test_off_a_space_the_flag_decides_and_unset_keeps_the_preset_rules():
    assert requested_profile(None, {}) is None and plan_for(None, {}) is None
    assert requested_profile(None, {"RR_PROFILE": "task-4bit"}) == "task-4bit"
    assert requested_profile("task-bf16", {"RR_PROFILE": "task-4bit"}) == "task-bf16"
    assert plan_for("task-4bit", {}, measured_gpu_gb=141).reason.startswith("asked for")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        requested_profile("huge", {})
    with pytest.raises(ValueError, match="unknown SPACE_HARDWARE 'a9000'"):
        detect_hardware({"SPACE_HARDWARE": "a9000"})


def test_zerogpu_loads_everything_at_start_on_a_whole_blackwell_card():
    plan = choose_profile("auto", detect_hardware({"SPACES_ZERO_GPU": "true"}))
    assert plan.load_at_start and plan.gpu_size == "xlarge" and plan.residency == "all"
    assert not plan.cpu_offload  # ZeroGPU moves weights per call itself
    assert "RTX Pro 6000 Blackwell" in plan.reason  # sizes: tests/spaces/test_zerogpu_fit.py
    preset = resolve_preset("tiny", plan=plan)  # in-process critics: no torch.compile on ZeroGPU
    assert {(s["fast_decode"], s["device_map"]) for s in preset.critic_settings.values()} == {("off", "cuda")}
    assert "fast_decode" not in resolve_preset("tiny").critic_settings[Task.T2I]


def test_the_plan_sets_quantization_and_offload_of_the_preset(monkeypatch):
    monkeypatch.setattr("rr_core.presets.cuda_available", lambda: True)
    preset = resolve_preset("auto", env={}, plan=plan_for("task-4bit", {}, measured_gpu_gb=24))
    assert preset.name == "rationalrewards"
    assert {s["quantization"] for s in preset.critic_settings.values()} == {"4bit"}
    assert all(g.quantize_4bit and g.cpu_offload for g in preset.generators.values())
    bf16 = resolve_preset("auto", env={}, plan=plan_for("task-bf16", {}, measured_gpu_gb=80))
    assert {s["quantization"] for s in bf16.critic_settings.values()} == {"none"}
    assert not any(g.quantize_4bit or g.cpu_offload for g in bf16.generators.values())


def test_a_gpu_too_small_for_a_critic_uses_the_server_critic(monkeypatch):
    monkeypatch.setattr("rr_core.presets.cuda_available", lambda: True)
    plan = plan_for(None, {"SPACE_ID": "me/s", "SPACE_HARDWARE": "t4-small"})
    remote = resolve_preset("auto", env={"RR_CRITIC_URL": "http://critic:8000/v1"}, plan=plan)
    assert remote.name == "remote" and all(g.quantize_4bit for g in remote.generators.values())
    assert resolve_preset("auto", env={}, plan=plan).name == "tiny"  # no server: the offline banner


def test_per_task_residency_releases_the_other_tasks_generator(monkeypatch):
    plan = plan_for("task-bf16", {}, measured_gpu_gb=80)
    studio = Models(resolve_preset("tiny", plan=plan))
    studio.generator(Task.T2I)
    assert studio.loaded()["generator_t2i"]
    studio.generator(Task.EDIT)
    assert studio.loaded() == {"critic": False, "generator_t2i": False, "generator_edit": True}
    studio.critic().critic_for(Task.EDIT)
    assert studio.loaded()["critic"] and studio.loaded()["generator_edit"]


def test_the_health_line_says_which_profile_and_why():
    plan = plan_for(None, {"SPACE_ID": "me/s", "SPACE_HARDWARE": "a10g-small"})
    line = Health(Models(resolve_preset("tiny", plan=plan))).health()
    assert "Profile **task-4bit**" in line
    assert "a10g-small: 24 GB GPU" in line and "4-bit" in line
    assert "Profile" not in Health(Models(resolve_preset("tiny"))).health()
