"""The shared critic behaviour: truncation rule, failures, metadata, reward, task checks, routing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from rr_core.critics.base import (
    Critic,
    CritiqueRequest,
    DecodeSettings,
    Generation,
    PairRequest,
    UnsupportedTask,
)
from rr_core.critics.router import TaskRouter
from rr_core.critique import ParseStatus
from rr_core.errors import InvalidRequest
from rr_core.prompts import Conversation
from rr_core.reward import RewardSpec, apply_reward
from rr_core.rubric import Task
from tests import critique_texts as texts
from tests.critics.conftest import solid


class FixedCritic(Critic):
    """Answers every conversation with the same generation; records what it was asked."""

    def __init__(self, generation: Generation, tasks=(Task.T2I,), name: str = "fixed", **kwargs) -> None:
        super().__init__(name, tasks, **kwargs)
        self.generation = generation
        self.batches: list[list[Conversation]] = []

    def complete(self, conversations: Sequence[Conversation]) -> list[Generation]:
        self.batches.append(list(conversations))
        return [Generation(**vars(self.generation)) for _ in conversations]

    def complete_stream(self, conversation: Conversation) -> Iterator[str | Generation]:
        yield from (self.generation.text[:10], self.generation.text[10:])
        yield Generation(**vars(self.generation))


T2I = CritiqueRequest(Task.T2I, "a lighthouse at sunset", solid(64, 48, (200, 100, 0)))
EDIT = CritiqueRequest(Task.EDIT, "make the car red", solid(64, 64, (255, 0, 0)), solid(64, 64, (0, 0, 255)))


def test_ok_critique_carries_metadata_and_no_reward():
    critic = FixedCritic(Generation(texts.T2I_OK, prompt_tokens=100, completion_tokens=80, latency_s=0.5))
    critique = critic.critique(T2I)
    assert critique.status is ParseStatus.OK
    assert not critique.truncated
    assert (critique.model_id, critique.prompt_tokens, critique.completion_tokens, critique.latency_s) == (
        "fixed", 100, 80, 0.5)
    assert critique.template_version
    # the reward is the caller's setting, applied once by the caller: a critic never guesses a spec
    assert critique.reward is None and critique.reward_dimensions == ()
    assert critique.score("text_faithfulness") == 3.5


def test_streamed_and_batched_critiques_carry_no_reward():
    critic = FixedCritic(Generation(texts.T2I_OK))
    streamed = list(critic.stream(T2I))[-1]
    [batched] = critic.critique_many([T2I])
    assert streamed.reward is None and batched.reward is None


def test_the_callers_spec_gives_the_reward():
    spec = RewardSpec(dimensions=("text_faithfulness",))
    critique = apply_reward(FixedCritic(Generation(texts.T2I_OK)).critique(T2I), spec)
    assert critique.reward == pytest.approx((3.5 - 1) / 3)
    assert critique.reward_dimensions == ("text_faithfulness",)


def test_a_critic_takes_no_reward_spec():
    with pytest.raises(TypeError):
        FixedCritic(Generation(texts.T2I_OK), reward_spec=RewardSpec())


def test_cut_off_critique_is_truncated_and_never_ok():
    critic = FixedCritic(Generation(texts.T2I_OK, finish_reason="length"),
                         settings=DecodeSettings(max_new_tokens=77))
    critique = critic.critique(T2I)
    assert critique.truncated
    assert critique.status is ParseStatus.PARTIAL
    assert "cut off at max_new_tokens=77" in critique.problems


def test_backend_error_gives_failed_critique_with_raw_text():
    critique = FixedCritic(Generation('{"choices": []}', error="malformed answer")).critique(T2I)
    assert critique.status is ParseStatus.FAILED
    assert critique.raw_text == '{"choices": []}'
    assert critique.reward is None
    assert critique.error == "malformed answer"


def test_garbage_text_is_failed_not_scored():
    critique = FixedCritic(Generation(texts.GARBAGE)).critique(T2I)
    assert critique.status is ParseStatus.FAILED
    assert critique.reward is None
    assert critique.raw_text == texts.GARBAGE


def test_stream_yields_deltas_then_the_critique():
    items = list(FixedCritic(Generation(texts.T2I_OK)).stream(T2I))
    assert "".join(items[:-1]) == texts.T2I_OK
    assert items[-1].status is ParseStatus.OK


def test_task_the_critic_does_not_serve_is_refused():
    with pytest.raises(UnsupportedTask, match="serves t2i only"):
        FixedCritic(Generation(texts.EDIT_OK)).critique(EDIT)


@pytest.mark.parametrize("make", [
    lambda: CritiqueRequest(Task.EDIT, "make it red", solid(8, 8, (0, 0, 0))),
    lambda: CritiqueRequest(Task.T2I, "   ", solid(8, 8, (0, 0, 0))),
    lambda: CritiqueRequest(Task.T2I, "a cat", solid(8, 8, (0, 0, 0)), solid(8, 8, (0, 0, 0))),
    lambda: CritiqueRequest("t2i", "a cat", b"not an image"),
])
def test_bad_requests_are_refused(make):
    with pytest.raises(InvalidRequest):
        make()


def test_compare_many_parses_pairwise_and_marks_truncation():
    critic = FixedCritic(Generation(texts.PAIRWISE_EDIT, finish_reason="length"), tasks=(Task.EDIT,))
    pair = PairRequest("edit", "make the car red", solid(32, 32, (255, 0, 0)), solid(32, 32, (250, 0, 0)),
                       source_image=solid(32, 32, (0, 0, 255)))
    [result] = critic.compare_many([pair])
    assert result.truncated and result.status is not ParseStatus.OK
    assert result.model_id == "fixed"


def test_router_splits_a_mixed_batch_and_restores_order():
    t2i = FixedCritic(Generation(texts.T2I_OK), tasks=(Task.T2I,), name="t2i-model")
    edit = FixedCritic(Generation(texts.EDIT_OK), tasks=(Task.EDIT,), name="edit-model")
    router = TaskRouter({"t2i": t2i, Task.EDIT: edit})
    results = router.critique_many([T2I, EDIT, T2I, EDIT, EDIT])
    assert [r.model_id for r in results] == ["t2i-model", "edit-model", "t2i-model", "edit-model", "edit-model"]
    assert [len(b) for b in t2i.batches] == [2] and [len(b) for b in edit.batches] == [3]
    assert all(r.status is ParseStatus.OK for r in results)


def test_router_refuses_a_task_without_critic():
    router = TaskRouter({Task.T2I: FixedCritic(Generation(texts.T2I_OK))})
    with pytest.raises(UnsupportedTask, match="No critic is loaded for task 'edit'"):
        router.critique_many([T2I, EDIT])
    with pytest.raises(ValueError, match="does not serve"):
        TaskRouter({Task.EDIT: FixedCritic(Generation(texts.T2I_OK))})


def test_a_users_template_file_replaces_the_shipped_one(tmp_path):
    from rr_core.prompts import PROMPTS_DIR
    from tests.scripted import ScriptedCritic, critique_text

    text = (PROMPTS_DIR / "t2i_pointwise.yaml").read_text(encoding="utf-8")
    mine = tmp_path / "mine.yaml"
    mine.write_text(text.replace('version: "2.0"', 'version: "7-house"').replace(
        "User Instruction:", "Our house style. User Instruction:"))
    critic = ScriptedCritic(lambda c: critique_text("t2i", 3.0), templates=[mine])
    from PIL import Image

    from rr_core.critics.base import CritiqueRequest, PairRequest

    image = Image.new("RGB", (32, 32), "red")
    critique = critic.critique(CritiqueRequest("t2i", "a fox", image))
    assert critique.template_version.startswith("file:t2i_pointwise@7-house#")
    assert "Our house style" in critic.seen[-1].user_text
    critic.compare(PairRequest("t2i", "a fox", image, image))  # pairwise keeps the shipped template
    assert critic.seen[-1].template_version.startswith("shipped:t2i_pairwise@2.1#")
