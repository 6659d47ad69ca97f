"""The in-process transformers critic, end to end on the tiny random-weight Qwen3-VL."""

from __future__ import annotations

import pytest
import torch

from rr_core.critics.base import CritiqueRequest
from rr_core.critics.transformers_critic import TransformersCritic, TransformersCriticConfig
from rr_core.critique import ParseStatus
from rr_core.rubric import Task
from tests.critics.conftest import gradient, solid

pytestmark = pytest.mark.slow


def make_critic(chat_model, path, **overrides) -> TransformersCritic:
    config = TransformersCriticConfig(model=str(path), tasks=("t2i", "edit"), **{"max_new_tokens": 24, **overrides})
    return TransformersCritic(config, chat_model=chat_model)


def requests_of_different_lengths() -> list[CritiqueRequest]:
    return [
        CritiqueRequest(Task.T2I, "a fox", solid(64, 64, (200, 80, 0))),
        CritiqueRequest(Task.T2I, "a lighthouse on a cliff at sunset, watercolor, with the word HOPE",
                        gradient(160, 96)),
        CritiqueRequest(Task.EDIT, "make the car red", gradient(96, 96), source_image=solid(96, 96, (0, 0, 255))),
        CritiqueRequest(Task.T2I, "a bowl of fruit " * 6, solid(48, 128, (20, 160, 40))),
    ]


def test_image_in_critique_out(tiny_chat_model, tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path)
    critique = critic.critique(CritiqueRequest(Task.T2I, "a red fox in the snow", gradient(120, 80)))
    # Random weights write garbage: a failed parse that keeps the text and has no reward.
    assert critique.status is ParseStatus.FAILED
    assert critique.raw_text and critique.reward is None
    assert critique.model_id == str(tiny_critic_path)
    assert critique.prompt_tokens > 100 and 0 < critique.completion_tokens <= 24
    assert critique.latency_s > 0 and critique.template_version


def test_edit_prompt_carries_both_images(tiny_chat_model, tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path, max_new_tokens=4)
    image = gradient(96, 96)
    edit = critic.critique(CritiqueRequest(Task.EDIT, "make it red", image, source_image=solid(96, 96, (0, 0, 9))))
    conversation = critic._pointwise_conversation(
        CritiqueRequest(Task.EDIT, "make it red", image, source_image=solid(96, 96, (0, 0, 9))))
    encoded = tiny_chat_model.encode([conversation.to_transformers()])
    assert encoded["image_grid_thw"].shape[0] == 2
    assert edit.prompt_tokens == int(encoded["attention_mask"].sum())
    assert edit.status is ParseStatus.FAILED and edit.raw_text


def test_stream_deltas_concatenate_to_the_batch_text(tiny_chat_model, tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path, max_new_tokens=40)
    request = requests_of_different_lengths()[1]
    items = list(critic.stream(request))
    deltas, final = items[:-1], items[-1]
    assert len(deltas) > 1 and all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas) == final.raw_text == critic.critique(request).raw_text


def test_batched_greedy_equals_one_by_one(tiny_chat_model, tiny_critic_path):
    requests = requests_of_different_lengths()
    batched = make_critic(tiny_chat_model, tiny_critic_path, batch_size=4).critique_many(requests)
    single = [make_critic(tiny_chat_model, tiny_critic_path, batch_size=1).critique(r) for r in requests]
    assert len({c.prompt_tokens for c in batched}) == len(requests), "left padding must actually happen"
    assert [c.raw_text for c in batched] == [c.raw_text for c in single]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in single]


def test_token_limit_marks_truncated_and_never_ok(tiny_chat_model, tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path, max_new_tokens=5)
    critique = critic.critique(requests_of_different_lengths()[0])
    assert critique.truncated
    assert critique.completion_tokens == 5
    assert critique.status is not ParseStatus.OK
    assert "cut off at max_new_tokens=5" in critique.problems


def test_sampling_with_a_seed_is_reproducible(tiny_chat_model, tiny_critic_path):
    critic = make_critic(tiny_chat_model, tiny_critic_path, temperature=1.0, seed=11)
    request = requests_of_different_lengths()[0]
    assert critic.critique(request).raw_text == critic.critique(request).raw_text


class StopAtOnce(TransformersCritic):
    """Uses the logits-processor hook to force the end token first: proves the hook reaches generate."""

    def _logits_processors(self, batch_size, conversations):
        eos = min(self.chat_model.eos_ids)

        def force_eos(input_ids, scores):
            forced = torch.full_like(scores, float("-inf"))
            forced[:, eos] = 0.0
            return forced

        return [force_eos]


def test_logits_processor_hook_is_applied(tiny_chat_model, tiny_critic_path):
    config = TransformersCriticConfig(model=str(tiny_critic_path), tasks=("t2i", "edit"), max_new_tokens=20)
    critic = StopAtOnce(config, chat_model=tiny_chat_model)
    critiques = critic.critique_many(requests_of_different_lengths()[:2])
    assert [(c.raw_text, c.completion_tokens, c.truncated) for c in critiques] == [("", 1, False)] * 2


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="Unknown TransformersCriticConfig setting"):
        TransformersCriticConfig.from_dict({"model": "x", "quantisation": "4bit"})
    with pytest.raises(ValueError, match="quantization"):
        TransformersCriticConfig(quantization="3bit")
    with pytest.raises(ValueError, match="name the model"):
        TransformersCriticConfig(tasks=("t2i", "edit"))
    assert TransformersCriticConfig(tasks=("edit",)).model_name == "TIGER-Lab/RationalRewards-8B-Edit"


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_loading_keeps_the_vision_tower_full_precision(tiny_critic_path, quantization):
    import bitsandbytes as bnb

    config = TransformersCriticConfig(model=str(tiny_critic_path), quantization=quantization, max_new_tokens=6)
    critic = TransformersCritic(config)
    quantized = (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    names = [name for name, module in critic.model.named_modules() if isinstance(module, quantized)]
    assert any(".language_model." in name for name in names)
    assert not any(".visual." in name for name in names)
    assert not isinstance(critic.model.lm_head, quantized)
    critique = critic.critique(requests_of_different_lengths()[1])
    assert critique.completion_tokens >= 1 and critique.raw_text


def test_streaming_decodes_line_by_line_and_loses_nothing(tiny_chat_model):
    """Each step decodes only the current line (not the whole critique: quadratic at 2,048 tokens),
    and the deltas still join up to exactly the full decode, multi-byte characters included."""
    import random

    import torch

    from rr_core.critics.chat_model import DeltaStreamer

    tokenizer = tiny_chat_model.processor.tokenizer
    text = "\n".join(f"## Justification: line {i} with é, ü and 漢字 — a dash." for i in range(60))
    tokens = tokenizer.encode(text, add_special_tokens=False)
    lengths = []

    class Counting:
        def decode(self, ids, **kwargs):
            lengths.append(len(ids))
            return tokenizer.decode(ids, **kwargs)

    streamer = DeltaStreamer(Counting(), eos_ids=set())
    streamer.put(torch.tensor([[0]]))  # the prompt
    rng = random.Random(0)
    position = 0
    while position < len(tokens):
        step = rng.randint(1, 3)
        streamer.put(torch.tensor(tokens[position:position + step]))
        position += step
    streamer.end()
    assert "".join(streamer) == tokenizer.decode(tokens, skip_special_tokens=True)
    assert len(tokens) > 1000 and max(lengths) <= 48  # a window, never the whole text


def test_a_checkpoint_that_is_not_there_gives_a_clear_error(tmp_path):
    from rr_core.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match=r"critic '.*missing-critic'.*huggingface-cli download"):
        TransformersCritic(TransformersCriticConfig(model=str(tmp_path / "missing-critic")))


def test_the_shared_chat_model_is_its_own_module_used_by_critic_and_server(tiny_chat_model):
    """serve and the fast path share the loaded model without the critique protocol: one ChatModel class."""
    import rr_core.critics.chat_model as chat_model
    import rr_core.serve as serve

    assert type(tiny_chat_model) is chat_model.ChatModel is serve.ChatModel
    critic = TransformersCritic(TransformersCriticConfig(model="unused", tasks=("t2i",), max_new_tokens=4),
                                chat_model=tiny_chat_model)
    assert critic.chat_model is tiny_chat_model
    assert not hasattr(chat_model, "TransformersCritic")
