"""The one model of a run the studio keeps: the loop's own state (rounds, candidates, critiques, picks,
proposals, best) plus the database id of every stored candidate and the round in flight.

A run used to exist three times (the loop's results, a view's copies, the rows) and a reopened
session recomputed its picks and proposals with a rule of its own. Here the live run *is* the loop's
`LoopState`, a reopened one is rebuilt into the same `LoopState` by `studio.codec`, and a stored
round's pick and proposal come from the loop's own `decide_round`. What the UI shows
is derived from this model (`studio.views`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from rr_core.critique import Critique
from rr_core.loop import Candidate, LoopResult, LoopState, RoundResult
from rr_core.rubric import Task


@dataclass
class Run:
    """A session's run: what the loop carries between rounds, with database ids.

    `state.rounds` are the finished rounds (the loop appends to them); `current` is the round being
    generated and critiqued, shown before it is finished and stored.
    """

    session_id: str
    state: LoopState
    candidate_ids: dict[tuple[int, int], int] = field(default_factory=dict)
    """(round index, candidate index) -> the `candidates` row id of that stored image."""
    current: RoundResult | None = None
    done: bool = False
    stop_reason: str | None = None
    generator_id: str = ""
    """The generator that made the stored images (its LoRA's artefact id included); "" when unknown."""

    @classmethod
    def new(cls, session_id: str, task: Task, request: str, source_image: Image.Image | None) -> Run:
        return cls(session_id, LoopState(task=task, source_image=source_image, request=request))

    @property
    def task(self) -> Task:
        return self.state.task

    @property
    def request(self) -> str:
        return self.state.request

    @property
    def source_image(self) -> Image.Image | None:
        return self.state.source_image

    @property
    def best(self) -> tuple[int, int] | None:
        """(round index, candidate index) of the best reward so far, as the loop keeps it."""
        if self.state.best_round is None or self.state.best_candidate is None:
            return None
        return self.state.best_round, self.state.best_candidate

    @property
    def rounds(self) -> list[tuple[RoundResult, bool]]:
        """Every round with whether it finished: the finished ones, then the one in flight."""
        finished = [(result, True) for result in self.state.rounds]
        return finished + ([(self.current, False)] if self.current is not None else [])

    @property
    def next_prompt(self) -> str:
        """The prompt a further round starts from: the last finished round's proposal."""
        if self.state.rounds:
            last = self.state.rounds[-1]
            return last.proposal or last.prompt
        return self.request

    @property
    def previous_prompt(self) -> str:
        return self.state.rounds[-1].prompt if self.state.rounds else self.request

    # --- what the loop's events change ---

    def start_round(self, index: int, prompt: str) -> None:
        self.done, self.stop_reason = False, None
        self.current = RoundResult(index, prompt, [], None, "", request=self.request)

    def add_image(self, candidate_index: int, seed: int, image: Image.Image) -> None:
        if self.current is None:
            raise RuntimeError("an image arrived outside a round")
        self.current.candidates.append(Candidate(candidate_index, seed, image))

    def set_critique(self, candidate_index: int, critique: Critique) -> None:
        if self.current is None:
            raise RuntimeError("a critique arrived outside a round")
        for candidate in self.current.candidates:
            if candidate.index == candidate_index:
                candidate.critique = critique

    def finish_round(self, result: RoundResult) -> None:
        """The loop finished `result` (and appended it to `state.rounds` itself)."""
        if not self.state.rounds or self.state.rounds[-1] is not result:
            self.state.rounds.append(result)
            self.state.update_best(result)
        self.current = None

    def finish(self, result: LoopResult) -> None:
        """The loop ended. A round cut short (stopped, or an error that stops) stays `current`, so its
        images are still shown; it was never stored."""
        self.done, self.stop_reason = True, result.stop_reason

    def candidate_id(self, round_index: int, candidate_index: int) -> int | None:
        return self.candidate_ids.get((round_index, candidate_index))

    def summary(self) -> dict[str, Any]:
        """What must be the same whether the run is live or read back: ids, per round the prompts,
        seeds, scores, rewards, pick and proposal, and the best candidate."""
        rounds = []
        for result in self.state.rounds:
            rounds.append({
                "index": result.index, "prompt": result.prompt, "request": result.request or result.prompt,
                "pick": result.pick, "proposal": result.proposal, "skipped": result.skipped,
                "candidates": [{
                    "index": c.index, "seed": c.seed, "candidate_id": self.candidate_id(result.index, c.index),
                    "reward": c.reward, "status": None if c.critique is None else c.critique.status.value,
                    "scores": None if c.critique is None else {k: (e.score, e.not_applicable)
                                                               for k, e in c.critique.scores.items()},
                    "refined_request": None if c.critique is None else c.critique.refined_request,
                } for c in result.candidates],
            })
        return {"session_id": self.session_id, "task": self.task.value, "request": self.request,
                "best": self.best, "best_reward": self.state.best_reward, "next_prompt": self.next_prompt,
                "rounds": rounds}
