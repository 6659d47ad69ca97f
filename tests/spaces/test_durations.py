"""Each ZeroGPU call declares a duration from its own arguments that covers the call's estimated work."""

from __future__ import annotations

import pytest
from PIL import Image

from rr_core.critics.base import CritiqueRequest
from rr_core.errors import InvalidRequest
from rr_core.generators.base import GenerationRequest
from rr_core.rubric import Task
from ui import zerogpu
from ui.zerogpu import FIGURES, MAX_DURATION_S, critique_seconds, generation_seconds

# What the Space's UI lets a visitor choose (app.py's sliders): steps 1-50, 1-4 candidates, 1024 px.
UI_STEPS = range(1, 51)
UI_CANDIDATES = range(1, 5)


def estimated_generation_s(steps: int, candidates: int) -> float:
    return FIGURES.generation_fixed_s + steps * candidates * FIGURES.generation_s_per_step


def estimated_critique_s(batch: int, tokens: int) -> float:
    pace = FIGURES.critique_s_per_token * (1 + FIGURES.critique_batch_growth * (batch - 1))
    return FIGURES.critique_fixed_s + tokens * pace


def test_generation_duration_covers_every_setting_the_ui_allows_and_fits_one_call():
    for steps in UI_STEPS:
        for candidates in UI_CANDIDATES:
            declared = generation_seconds(steps, candidates, 1024, 1024)
            assert declared >= estimated_generation_s(steps, candidates) * FIGURES.margin
            assert declared <= MAX_DURATION_S, (steps, candidates)


def test_generation_duration_follows_its_arguments():
    base = generation_seconds(4, 1, 1024, 1024)
    assert generation_seconds(8, 1, 1024, 1024) > base
    assert generation_seconds(4, 2, 1024, 1024) > base
    assert generation_seconds(4, 1, 512, 512) < base
    assert generation_seconds(None, 1) == generation_seconds(28, 1, 1024, 1024)  # the pipeline default


def test_critique_duration_covers_the_token_budget_of_each_batch():
    for batch in UI_CANDIDATES:
        for tokens in (256, 1024, 2048):
            declared = critique_seconds(batch, tokens)
            assert declared >= estimated_critique_s(batch, tokens) * FIGURES.margin
            assert declared <= MAX_DURATION_S
    assert critique_seconds(2, 2048) > critique_seconds(1, 2048) > critique_seconds(1, 1024)


def test_the_decorated_calls_compute_their_duration_from_the_call_arguments():
    class Critic:
        settings = type("S", (), {"max_new_tokens": 1024})()

    key = zerogpu._register(Critic())
    request = GenerationRequest(prompt="a fox", steps=20, num_candidates=3, width=512, height=512)
    calls = zerogpu.GPU_CALLS[None]
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
