"""Every shipped RL config whose critic decodes under the critique grammar gives it enough tokens for
the grammar's longest critique of either task: a smaller cap cuts critiques off, and a cut-off
critique is masked out of the update (rl_tiny.yaml once capped at 400 tokens, so every edit critique
was masked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rr_core.grammar import max_tokens_for
from rr_core.critics.tiny import tiny_critic_settings
from rr_core.rubric import Task
from training.rl.config import load_rl_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "training" / "configs").glob("rl_*.yaml"))


def _grammar_token_cap(path: Path) -> int | None:
    """The max_new_tokens a config's critic decodes with when it decodes under the grammar, else None."""
    critic = load_rl_config(path).critic
    settings = dict(critic.settings)
    if critic.kind == "tiny":
        settings = {**tiny_critic_settings(), **settings}
    if not settings.get("constrained"):
        return None
    return int(settings.get("max_new_tokens", 2048))


GRAMMAR_CONFIGS = [p for p in CONFIGS if _grammar_token_cap(p) is not None]


def test_the_tiny_configs_decode_under_the_grammar():
    assert {p.name for p in GRAMMAR_CONFIGS} >= {"rl_tiny.yaml", "rl_tiny_qwen_edit.yaml"}


@pytest.mark.parametrize("path", GRAMMAR_CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("task", list(Task), ids=lambda t: t.value)
def test_grammar_critic_has_room_for_the_longest_critique(path, task):
    cap = _grammar_token_cap(path)
    needed = max_tokens_for(task, "pointwise")
    assert cap >= needed, (f"{path.name}: critic.max_new_tokens {cap} is below the {needed} tokens of the "
                           f"grammar's longest {task.value} critique: such critiques are cut off and masked")
