"""One request rule, checked where a request enters: the loop's `run`, `GenerationRequest` and
`CritiqueRequest` / `PairRequest` refuse an empty or over-long request with the same specific error."""

from __future__ import annotations

import pytest
from PIL import Image

from rr_core.critics.base import CritiqueRequest, PairRequest
from rr_core.errors import InvalidRequest
from rr_core.generators.base import GenerationRequest
from rr_core.limits import MAX_REQUEST_CHARS
from rr_core.loop import LoopConfig, RefineLoop
from tests.scripted import PaintGenerator, ScriptedCritic, critique_text

IMAGE = Image.new("RGB", (16, 16), "red")
TOO_LONG = "a" * (MAX_REQUEST_CHARS + 1)


def run_loop(prompt: str) -> None:
    loop = RefineLoop(PaintGenerator(), ScriptedCritic(lambda c: critique_text("t2i", 3.0)), "t2i")
    list(loop.run(prompt, LoopConfig(rounds=1)))


ENTRIES = {
    "loop": run_loop,
    "generation": lambda text: GenerationRequest(text),
    "critique": lambda text: CritiqueRequest("t2i", text, IMAGE),
    "pair": lambda text: PairRequest("t2i", text, IMAGE, IMAGE),
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize(("text", "message"), [
    ("", r"^The request is empty: describe the image"),
    ("  \n\t", r"^The request is empty: describe the image"),
    (TOO_LONG, rf"^The request is {MAX_REQUEST_CHARS + 1} characters long; the limit is {MAX_REQUEST_CHARS}\."),
    (None, r"^The request must be text, got NoneType\."),
])
def test_every_entry_refuses_a_bad_request_with_the_same_error(entry, text, message):
    with pytest.raises(InvalidRequest, match=message):
        ENTRIES[entry](text)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_entry_measures_the_request_after_stripping(entry):
    ENTRIES[entry]("  " + "a" * MAX_REQUEST_CHARS + "\n")


def test_requests_keep_the_stripped_text():
    assert GenerationRequest("  a fox \n").prompt == "a fox"
    assert CritiqueRequest("t2i", " a fox ", IMAGE).request == "a fox"


def test_a_direct_round_still_refuses_an_empty_prompt():
    from rr_core.loop import LoopState
    from rr_core.rubric import Task

    loop = RefineLoop(PaintGenerator(), ScriptedCritic(lambda c: critique_text("t2i", 3.0)), "t2i")
    with pytest.raises(InvalidRequest, match="The request is empty"):
        list(loop.run_round("   ", LoopConfig(rounds=1), LoopState(task=Task.T2I, source_image=None)))
