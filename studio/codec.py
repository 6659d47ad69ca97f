"""The one translation between stored rows and the run model: a finished round to rows, and a stored
session back to a `Run`.

Functions here take a database session and never commit; the job that calls them owns the
transaction (`storage.db.write_transaction`). A round is written as one row per candidate image with
its critique, the critic's rendered prompt and the reward spec; read back, each image gets its
newest critique and each round its pick and proposal from the loop's own `decide_round`.
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from sqlalchemy.orm import Session

from rr_core.critique import Critique
from rr_core.errors import InvalidRequest
from rr_core.loop import Candidate, LoopConfig, RoundResult, decide_round
from rr_core.prompts import build_pointwise
from rr_core.reward import RewardSpec
from rr_core.rubric import Task
from storage import repository as repo
from storage.images import ImageStore
from storage.models import CandidateRow, SessionRow
from studio.run_model import Run


def generator_settings(config: LoopConfig, model: str = "") -> dict[str, Any]:
    """What a candidate row records of how its images were made, `model` being the generator's id (with
    its LoRA's artefact id when one is loaded, rr_core.presets.generator_id)."""
    settings = {"steps": config.steps, "guidance": config.guidance, "width": config.width,
                "height": config.height, "negative_prompt": config.negative_prompt}
    return {**settings, "model": model} if model else settings


def critic_messages(task: Task | str, request: str, image: Image.Image,
                    source_image: Image.Image | None = None) -> list[dict[str, str]] | None:
    """The critic's system and user turns for this image, as the SFT export writes them (images as
    <image>); None when the request cannot be rendered (a prompt over the length limit)."""
    try:
        return build_pointwise(task, request, image, source_image=source_image).to_sharegpt()["messages"]
    except InvalidRequest:
        return None


def write_round(db: Session, store: ImageStore, run: Run, result: RoundResult, owner_id: str,
                config: LoopConfig) -> dict[tuple[int, int], int]:
    """Store every candidate of a finished round (image, candidate row, critique with its prompt and reward
    spec). Returns the new row ids by (round, candidate); the caller sets them on the run once the
    transaction has committed."""
    request = result.request or result.prompt
    ids = {}
    for candidate in result.candidates:
        messages = None
        if candidate.critique is not None:
            messages = critic_messages(run.task, request, candidate.image, run.source_image)
        row = repo.record_candidate(
            db, store=store, session_id=run.session_id, owner_id=owner_id, request=request,
            used_prompt=result.prompt, image=candidate.image, critique=candidate.critique,
            round_index=result.index, candidate_index=candidate.index, seed=candidate.seed,
            generator_settings=generator_settings(config, run.generator_id), source_image=run.source_image,
            reward_spec=config.reward.to_dict(), prompt_messages=messages)
        ids[(result.index, candidate.index)] = row.id
    return ids


def add_critique(db: Session, candidate_id: int, critique: Critique, spec: RewardSpec, request: str,
                 task: Task | str, image: Image.Image, source_image: Image.Image | None) -> None:
    """Store one more critique of a stored image (a retry), with its prompt and reward spec."""
    repo.add_critique(db, candidate_id=candidate_id, critique=critique, reward_spec=spec.to_dict(),
                      prompt_messages=critic_messages(task, request, image, source_image))


def read_run(db: Session, store: ImageStore, row: SessionRow, user_id: str) -> Run:
    """A stored session as the run model, equal to the live run that wrote it (ids, picks, proposals,
    best, scores). A round with no stored image (its generation failed: a gap in the indices, or one
    the session row lists as skipped) is kept as a skipped round, as the loop keeps it."""
    rounds = repo.session_candidates(db, row.id, user_id)
    source = store.open(rounds[0].source_image_sha256) if rounds and rounds[0].source_image_sha256 else None
    run = Run.new(row.id, Task.parse(row.task), row.request, source)
    run.done = True
    run.generator_id = str(rounds[-1].generator_settings.get("model", "")) if rounds else ""
    by_index: dict[int, list[CandidateRow]] = {}
    for candidate_row in rounds:
        by_index.setdefault(candidate_row.round_index, []).append(candidate_row)
    ran = [*by_index, *(row.skipped_rounds or [])]
    for index in range(max(ran) + 1 if ran else 0):
        members = by_index.get(index, [])
        if not members:
            prompt = run.next_prompt
            result = RoundResult(index, prompt, [], None, prompt, skipped=True, request=row.request)
        else:
            candidates = [Candidate(m.candidate_index, m.seed if m.seed is not None else 0, store.open(m.image_sha256),
                                    repo.critique_from_row(m.critiques[-1]) if m.critiques else None)
                          for m in members]
            prompt = members[0].used_prompt
            pick, proposal = decide_round(candidates, prompt)
            result = RoundResult(index, prompt, candidates, pick, proposal, request=members[0].request)
            run.candidate_ids.update({(index, m.candidate_index): m.id for m in members})
        run.state.rounds.append(result)
        run.state.update_best(result)
    return run


def backfill_critic_prompts(db: Session, store: ImageStore, after_id: int = 0,
                            limit: int = repo.MAX_PAGE) -> tuple[int, int | None]:
    """Fill in the critic prompt of one page of critiques stored before prompts were kept (revision
    0003), from their round's request and images. Returns how many were filled and the last id seen
    (None when there were no more). A request the prompt builder refuses stays without a prompt (the
    SFT export leaves such critiques out)."""
    filled, last = 0, None
    for critique_row in repo.critiques_without_prompt(db, after_id, limit):
        last = critique_row.id
        candidate_row = critique_row.candidate
        source = store.open(candidate_row.source_image_sha256) if candidate_row.source_image_sha256 else None
        messages = critic_messages(candidate_row.session.task, candidate_row.request, store.open(candidate_row.image_sha256),
                                   source)
        if messages is not None:
            repo.set_prompt_messages(db, critique_row.id, messages)
            filled += 1
    return filled, last
