"""The Generate–Critique–Refine engine that every front end drives (app, command line, benchmarks).

A loop is a sequence of rounds. Each round generates K candidates from one prompt, critiques all of
them in one batch, picks the best reward, and proposes the critique's refined request as the next
prompt. Every image is judged against the session's request (the user's first prompt); refined
prompts only drive the generator, so the answer is the best image of any round (keep-best) by one
measure, and every round's images are scored, refined ones included. The engine yields typed
events; it never raises on a model failure: a failed generation or critique is an `ErrorEvent` and
the configured policy retries, skips or stops.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from PIL import Image

from rr_core.config import from_dict
from rr_core.critics.base import CritiqueRequest
from rr_core.critique import Critique, ParseStatus
from rr_core.errors import InvalidRequest
from rr_core.generators.base import GenerationRequest
from rr_core.limits import MAX_CANDIDATES, MAX_ROUNDS
from rr_core.prompts import validate_request
from rr_core.reward import RewardSpec, apply_reward
from rr_core.rubric import Task, dimension_keys

logger = logging.getLogger(__name__)

Policy = Literal["retry", "skip", "stop"]
Keep = Literal["best", "last"]
StopReason = Literal["threshold", "no_improvement", "max_rounds", "cancelled", "error"]


class CriticLike(Protocol):
    """A critic or a TaskRouter; `cancel` lets a remote critic abandon a request in flight."""

    def critique_many(self, requests: list[CritiqueRequest],
                      cancel: threading.Event | None = None) -> list[Critique]: ...
    def stream(self, request: CritiqueRequest, cancel: threading.Event | None = None) -> Iterator[str | Critique]: ...


class GeneratorLike(Protocol):
    def generate(self, request: GenerationRequest) -> list[Image.Image]: ...


@dataclass
class LoopConfig:
    """How a refinement session runs. Every field is a plain value, so it reads from YAML or flags."""

    rounds: int = 3
    """Maximum number of rounds; round 1 uses the user's prompt, later rounds the refined one."""
    candidates: int = 1
    """Images per round (K), critiqued in one batch; the round's pick is the best reward."""
    stop_threshold: float | None = 3.5
    """Stop when every stop dimension of the round's pick scores at least this (None: never)."""
    stop_dimensions: tuple[str, ...] | None = None
    """Dimensions the threshold applies to; None means the reward's dimensions. N/A counts as met."""
    patience: int | None = None
    """Stop after this many rounds without a better reward than the best so far (None: never)."""
    keep: Keep = "best"
    """Which image is the answer. best: the best reward of any round (keep-best, the default). last:
    the last round's pick replaces the earlier ones whatever it scores (upstream's rule: the refined
    image always replaces the first; its critique is recorded but decides nothing)."""
    fresh_seeds: bool = False
    """False: every round reuses the same seeds, isolating the effect of the prompt. True: new seeds."""
    seed: int = 0
    """Seed of candidate 0 in round 1 (candidate i uses seed + i)."""
    reward: RewardSpec = field(default_factory=RewardSpec)
    """Which dimensions (and weights) make the reward; recorded with every critique."""
    stream_tokens: bool = True
    """Stream the critique's tokens when a round has one candidate (K > 1 is critiqued as a batch)."""
    on_generation_error: Policy = "retry"
    on_critique_error: Policy = "retry"
    """What to do when a generation raises, or a critique raises or fails to parse: retry the step
    (up to max_retries, then skip), skip the round (it has no reward; the prompt carries over), or
    stop the loop."""
    max_retries: int = 1
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    negative_prompt: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise InvalidRequest(f"rounds must be between 1 and {MAX_ROUNDS}, got {self.rounds}.")
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise InvalidRequest(f"candidates per round must be between 1 and {MAX_CANDIDATES}, got {self.candidates}.")
        if self.stop_threshold is not None and not 1.0 <= self.stop_threshold <= 4.0:
            raise InvalidRequest(f"the stop threshold is a score from 1 to 4, got {self.stop_threshold}.")
        if self.patience is not None and self.patience < 1:
            raise InvalidRequest(f"patience must be at least 1 round, got {self.patience}.")
        for name in ("on_generation_error", "on_critique_error"):
            if getattr(self, name) not in ("retry", "skip", "stop"):
                raise InvalidRequest(f"{name} must be retry, skip or stop, got {getattr(self, name)!r}.")
        if self.max_retries < 0:
            raise InvalidRequest("max_retries must be >= 0.")
        if self.keep not in ("best", "last"):
            raise InvalidRequest(f"keep must be best or last, got {self.keep!r}.")
        if isinstance(self.reward, Mapping):
            self.reward = RewardSpec.from_dict(dict(self.reward))
        if self.stop_dimensions is not None:
            self.stop_dimensions = tuple(self.stop_dimensions)

    @classmethod
    def upstream(cls, **overrides: Any) -> "LoopConfig":
        """Upstream's test-time refinement, exactly: one image, one refinement round, skipped when
        text faithfulness and physical quality are both >= 3.0; the refined image always replaces the
        first (no re-scoring decides). Settings that would change the rule cannot be overridden."""
        fixed = dict(rounds=2, candidates=1, stop_threshold=3.0,
                     stop_dimensions=("text_faithfulness", "physical_quality"), patience=None, keep="last")
        clashing = sorted(k for k, v in overrides.items() if k in fixed and v != fixed[k])
        if clashing:
            raise InvalidRequest(f"upstream's rule fixes {', '.join(clashing)}; drop them or leave --upstream out.")
        return cls(**{**overrides, **fixed})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "LoopConfig":
        return from_dict(cls, values, "loop", InvalidRequest)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["reward"] = self.reward.to_dict()
        data["stop_dimensions"] = list(self.stop_dimensions) if self.stop_dimensions else None
        return data


# --- events ------------------------------------------------------------------------------------


@dataclass
class RoundStarted:
    round_index: int
    prompt: str
    seeds: list[int]


@dataclass
class ImageReady:
    round_index: int
    candidate_index: int
    image: Image.Image
    seed: int


@dataclass
class CritiqueToken:
    round_index: int
    candidate_index: int
    text: str


@dataclass
class CritiqueParsed:
    round_index: int
    candidate_index: int
    critique: Critique


@dataclass
class Candidate:
    index: int
    seed: int
    image: Image.Image
    critique: Critique | None = None

    @property
    def reward(self) -> float | None:
        return self.critique.reward if self.critique is not None else None


@dataclass
class RoundResult:
    """One finished round. `pick` is the candidate index with the best reward (None: no reward)."""

    index: int
    prompt: str
    candidates: list[Candidate]
    pick: int | None
    proposal: str
    generation_s: float = 0.0
    critique_s: float = 0.0
    skipped: bool = False
    request: str = ""  # what the critic judged the images against (the session's request); "" = `prompt`

    @property
    def reward(self) -> float | None:
        return self.candidates[self.pick].reward if self.pick is not None else None

    @property
    def picked(self) -> Candidate | None:
        return self.candidates[self.pick] if self.pick is not None else None


@dataclass
class RoundDone:
    result: RoundResult


@dataclass
class ErrorEvent:
    round_index: int
    stage: Literal["generate", "critique"]
    message: str
    action: Policy
    attempt: int


@dataclass
class LoopResult:
    rounds: list[RoundResult]
    best_round: int | None
    best_candidate: int | None
    stop_reason: StopReason

    @property
    def best(self) -> Candidate | None:
        if self.best_round is None or self.best_candidate is None:
            return None
        return self.rounds[self.best_round].candidates[self.best_candidate]

    def reward_history(self) -> list[float | None]:
        return [r.reward for r in self.rounds]


@dataclass
class LoopDone:
    result: LoopResult


LoopEvent = RoundStarted | ImageReady | CritiqueToken | CritiqueParsed | RoundDone | ErrorEvent | LoopDone


class Cancelled(Exception):
    """Raised inside the engine when the caller's cancel event is set; never escapes `run`."""


# --- the engine --------------------------------------------------------------------------------


@dataclass
class LoopState:
    """What carries from round to round: the session's request, the rounds so far and the best candidate.

    `request` is what every image is judged against: the user's first prompt. Refined prompts only
    drive the generator, so rewards of different rounds measure the same thing and keep-best
    compares like with like (a refined prompt is longer and stricter; judged against itself, a
    better image could score lower).
    """

    task: Task
    source_image: Image.Image | None
    request: str = ""
    rounds: list[RoundResult] = field(default_factory=list)
    best_round: int | None = None
    best_candidate: int | None = None
    best_reward: float | None = None
    rounds_since_improvement: int = 0

    def update_best(self, result: RoundResult, keep: Keep = "best") -> None:
        """Track the answer: the best reward so far (keep best), or the newest round's image (keep last:
        its pick, or its first candidate when none has a reward, since no score decides)."""
        if keep == "last" and result.candidates:
            improved = self.best_reward is None or (result.reward is not None and result.reward > self.best_reward)
            pick = result.pick if result.pick is not None else result.candidates[0].index
            self.best_round, self.best_candidate, self.best_reward = result.index, pick, result.reward
            self.rounds_since_improvement = 0 if improved else self.rounds_since_improvement + 1
        elif result.reward is not None and (self.best_reward is None or result.reward > self.best_reward):
            self.best_round, self.best_candidate, self.best_reward = result.index, result.pick, result.reward
            self.rounds_since_improvement = 0
        else:
            self.rounds_since_improvement += 1


class RefineLoop:
    """Drives a generator and a critic through rounds; one instance serves many sessions."""

    def __init__(self, generator: GeneratorLike, critic: CriticLike, task: Task | str) -> None:
        self.generator = generator
        self.critic = critic
        self.task = Task.parse(task)

    def run(
        self,
        prompt: str,
        config: LoopConfig,
        source_image: Image.Image | None = None,
        next_prompt: Callable[[RoundResult], str | None] | None = None,
        cancel: threading.Event | None = None,
        state: LoopState | None = None,
    ) -> Iterator[LoopEvent]:
        """Run rounds until a stop rule fires; yields events, ending with LoopDone.

        `next_prompt(round)` lets the caller edit or replace the proposed refined prompt before the
        next round (return None to accept the proposal). `state` continues an earlier session.
        """
        # 1. Check inputs.
        prompt = validate_request(prompt)
        if self.task is Task.EDIT and source_image is None and (state is None or state.source_image is None):
            raise InvalidRequest("An edit session needs a source image.")
        state = state or LoopState(task=self.task, source_image=source_image)
        cancel = cancel or threading.Event()
        stop_reason: StopReason = "max_rounds"
        # 2. Rounds.
        for round_number in range(config.rounds):
            if cancel.is_set():
                stop_reason = "cancelled"
                break
            result = None
            for event in self.run_round(prompt, config, state, cancel):
                if isinstance(event, RoundDone):
                    result = event.result
                elif isinstance(event, ErrorEvent) and event.action == "stop":
                    stop_reason = "error"
                yield event
            if result is None:
                if stop_reason != "error":
                    stop_reason = "cancelled"
                break
            # 3. Stop rules, then the next prompt.
            reason = self._stop_reason(result, state, config)
            if reason is not None:
                stop_reason = reason
                break
            if round_number + 1 == config.rounds:
                break
            override = next_prompt(result) if next_prompt is not None else None
            prompt = validate_request(override) if override else result.proposal
        yield LoopDone(LoopResult(rounds=list(state.rounds), best_round=state.best_round,
                                  best_candidate=state.best_candidate, stop_reason=stop_reason))

    def run_round(self, prompt: str, config: LoopConfig, state: LoopState,
                  cancel: threading.Event | None = None) -> Iterator[LoopEvent]:
        """One round: generate K candidates, critique them in one batch, pick, propose.

        Ends with RoundDone, or with an ErrorEvent whose action is "stop", or early when cancelled.
        The prompt is not validated again here: `run` validated it (and every prompt it hands on), and
        a direct caller's prompt is checked by the `GenerationRequest` built from it.
        """
        cancel = cancel or threading.Event()
        index = len(state.rounds)
        state.request = state.request or prompt
        base_seed = config.seed + (index * config.candidates if config.fresh_seeds else 0)
        seeds = [base_seed + i for i in range(config.candidates)]
        yield RoundStarted(index, prompt, seeds)

        # 1. Generate.
        started = time.perf_counter()
        images = None
        for attempt in range(config.max_retries + 1):
            if cancel.is_set():
                return
            try:
                images = self.generator.generate(GenerationRequest(
                    prompt=prompt, negative_prompt=config.negative_prompt, seed=base_seed,
                    steps=config.steps, guidance=config.guidance, width=config.width, height=config.height,
                    num_candidates=config.candidates, source_image=state.source_image))
                break
            except InvalidRequest:
                raise
            except Exception as exc:  # a model failure is an event, not a crash of the caller
                logger.exception("generation failed in round %d", index)
                action = _action(config.on_generation_error, attempt, config.max_retries)
                yield ErrorEvent(index, "generate", f"{type(exc).__name__}: {exc}", action, attempt + 1)
                if action != "retry":
                    break
        generation_s = time.perf_counter() - started
        if images is None:
            if config.on_generation_error == "stop":
                return
            result = RoundResult(index, prompt, [], None, prompt, generation_s=generation_s, skipped=True,
                                 request=state.request)
            state.rounds.append(result)
            state.update_best(result, config.keep)
            yield RoundDone(result)
            return
        candidates = [Candidate(i, seed, image) for i, (seed, image) in enumerate(zip(seeds, images))]
        for candidate in candidates:
            yield ImageReady(index, candidate.index, candidate.image, candidate.seed)

        # 2. Critique every candidate; retry the ones that failed.
        started = time.perf_counter()
        pending = list(range(len(candidates)))
        for attempt in range(config.max_retries + 1):
            if cancel.is_set():
                return
            try:
                yield from self._critique(index, candidates, pending, state, config, cancel)
            except InvalidRequest:
                raise
            except Exception as exc:
                if cancel.is_set():  # the critic abandoned its request because the caller cancelled
                    return
                logger.exception("critique failed in round %d", index)
                action = _action(config.on_critique_error, attempt, config.max_retries)
                yield ErrorEvent(index, "critique", f"{type(exc).__name__}: {exc}", action, attempt + 1)
                if action == "stop":
                    return
                if action == "skip":
                    break
                continue
            failed = [i for i in pending if candidates[i].critique.status is ParseStatus.FAILED]
            if not failed:
                break
            action = _action(config.on_critique_error, attempt, config.max_retries)
            message = "; ".join(f"candidate {i}: the critique did not parse"
                                + (f" ({candidates[i].critique.error})" if candidates[i].critique.error else "")
                                for i in failed)
            yield ErrorEvent(index, "critique", message, action, attempt + 1)
            if action == "stop":
                return
            if action == "skip":
                break
            pending = failed
        critique_s = time.perf_counter() - started

        # 3. Pick the best reward and propose its refined request.
        pick, proposal = decide_round(candidates, prompt)
        result = RoundResult(index, prompt, candidates, pick, proposal, generation_s, critique_s,
                             request=state.request)
        state.rounds.append(result)
        state.update_best(result, config.keep)
        yield RoundDone(result)

    def _critique(self, index: int, candidates: list[Candidate], which: list[int],
                  state: LoopState, config: LoopConfig, cancel: threading.Event) -> Iterator[LoopEvent]:
        requests = [CritiqueRequest(self.task, state.request, candidates[i].image, state.source_image)
                    for i in which]
        if config.stream_tokens and len(which) == 1:
            critiques = []
            for item in self.critic.stream(requests[0], cancel):
                if isinstance(item, Critique):
                    critiques.append(item)
                else:
                    yield CritiqueToken(index, which[0], item)
        else:
            critiques = self.critic.critique_many(requests, cancel)
        for i, critique in zip(which, critiques):
            # The critic returns no reward: the session's RewardSpec is applied here, once.
            candidates[i].critique = apply_reward(critique, config.reward)
            yield CritiqueParsed(index, i, candidates[i].critique)

    @staticmethod
    def _stop_reason(result: RoundResult, state: LoopState, config: LoopConfig) -> StopReason | None:
        picked = result.picked
        if config.stop_threshold is not None and picked is not None and picked.critique is not None:
            task_keys = dimension_keys(picked.critique.task)
            keys = [k for k in (config.stop_dimensions or config.reward.keys_for(picked.critique.task))
                    if k in task_keys]
            entries = [picked.critique.scores.get(k) for k in keys]
            if keys and all(e is not None and (e.not_applicable or (e.score is not None and e.score >= config.stop_threshold))
                            for e in entries):
                return "threshold"
        if config.patience is not None and state.rounds_since_improvement >= config.patience:
            return "no_improvement"
        return None


def _action(policy: Policy, attempt: int, max_retries: int) -> Policy:
    if policy == "retry":
        return "retry" if attempt < max_retries else "skip"
    return policy


def decide_round(candidates: list[Candidate], prompt: str) -> tuple[int | None, str]:
    """A round's pick (the best reward, the first on a tie; None without any reward) and its proposal.

    The one rule for both: the loop applies it when a round finishes and the studio applies it again to
    rounds read back from storage, so a reopened session proposes exactly what the live one did.
    """
    rewarded = [c for c in candidates if c.reward is not None]
    pick = max(rewarded, key=lambda c: c.reward).index if rewarded else None
    return pick, _proposal(candidates, pick, prompt)


def _proposal(candidates: list[Candidate], pick: int | None, prompt: str) -> str:
    """The pick's refined request (if it passes the request rule); else any candidate's; else the prompt."""
    ordered = ([candidates[pick]] if pick is not None else []) + candidates
    for candidate in ordered:
        if candidate.critique is not None and candidate.critique.refined_request.strip():
            refined = candidate.critique.refined_request.strip()
            try:
                return validate_request(refined)
            except InvalidRequest:
                continue
    return prompt
