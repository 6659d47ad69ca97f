"""Review by annotators and admins, in two views with their own queues and progress:

- Review critiques: one critique at a time, a verdict per dimension (accept, reject, correct with a
  score), skip, back to an earlier item, undo of the last submit;
- Compare A/B: two images of one request, sides shuffled per pair (reproducibly: seeded by the pair),
  the side shown stored with the pick.

Queues hand out the items with the fewest judgements first, never an item the reviewer already
judged, and never one another reviewer holds a lease on (leases live in the database, so every app
worker agrees). Agreement (per item and per reviewer pair) and position bias come from
storage.agreement, the same figure the export's `--min-agreement` reads.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from rr_core.errors import InvalidRequest
from rr_core.limits import MAX_COMMENT_CHARS
from rr_core.rubric import dimensions
from storage import repository as repo
from storage.agreement import majority, reviewer_pairs
from storage.db import write_transaction
from storage.models import Annotation, PairJudgement, Role, CandidateRow
from studio.context import AppContext
from studio.users import RoleRequired
from studio.views import score_rows

LEASE = timedelta(minutes=10)
"""How long an item handed to one reviewer is kept from the others (a closed tab frees it then)."""
PREFERENCES = ("A", "B", "tie")


def round_label(row: CandidateRow) -> str:
    """The gallery's name for an image: "round 1 · #2" (never a database id)."""
    return f"round {row.round_index + 1} · #{row.candidate_index + 1}"


def left_first(candidate_a: int, candidate_b: int) -> bool:
    """Whether the lower candidate id of a pair is shown on the left: a coin seeded by the pair itself,
    so the same pair always shows the same way and half the pairs show each way."""
    return random.Random(repo.pair_item(candidate_a, candidate_b)).random() < 0.5


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Review:
    """The two review views' jobs; each needs the annotator or admin role."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # --- Review critiques ------------------------------------------------------------------------

    def next_critique(self, username: str | None, exclude: Sequence[int] = ()) -> dict[str, Any] | None:
        """Lease and show the next critique for this reviewer (fewest annotators first), leaving out
        the ones in `exclude` (skipped in this visit); None when none is left."""
        user_id = self.ctx.users.reviewer(username)
        now = _now()
        chosen = None
        with write_transaction(self.ctx.db) as db:  # the lease only; the item is read afterwards
            repo.release_leases(db, user_id, kind="critique")
            for row in repo.review_queue(db, annotator_id=user_id, now=now, exclude=exclude):
                if repo.take_lease(db, item=repo.critique_item(row.id), holder_id=user_id, now=now,
                                   until=now + LEASE):
                    chosen = row.id
                    break
        return None if chosen is None else self._critique_item(chosen, user_id)

    def critique(self, username: str | None, critique_id: int) -> dict[str, Any]:
        """One critique by id with this reviewer's own verdicts on it (Back, and after Undo); leased
        to them again unless someone else has it open now."""
        user_id = self.ctx.users.reviewer(username)
        with write_transaction(self.ctx.db) as db:
            row = repo.get_critique_for_user(db, int(critique_id), user_id)
            now = _now()
            repo.release_leases(db, user_id, kind="critique")
            repo.take_lease(db, item=repo.critique_item(row.id), holder_id=user_id, now=now, until=now + LEASE)
        return self._critique_item(int(critique_id), user_id)

    def _critique_item(self, critique_id: int, user_id: str) -> dict[str, Any]:
        store = self.ctx.store
        with self.ctx.db() as db:
            row = repo.get_critique(db, critique_id)
            round_ = row.candidate
            critique = repo.critique_from_row(row)
            mine = {a.dimension: {"verdict": a.verdict.value, "score": a.corrected_score, "comment": a.comment}
                    for a in repo.my_annotations(db, row.id, user_id)}
            return {"critique_id": row.id, "candidate_id": round_.id, "session_id": round_.session_id,
                    "label": round_label(round_), "task": round_.session.task, "request": round_.session.request,
                    "prompt": round_.used_prompt, "status": row.status, "summary": critique.summary,
                    "raw_text": row.raw_text, "scores": score_rows(critique), "mine": mine,
                    "image": store.open(round_.image_sha256),
                    "source_image": store.open(round_.source_image_sha256) if round_.source_image_sha256 else None,
                    "progress": self._critique_progress(db, user_id)}

    def annotate(self, username: str | None, critique_id: int, verdicts: dict[str, dict[str, Any]]) -> str:
        """Store the reviewer's verdict per dimension: {"key": {"verdict": accept|reject|correct,
        "score": float (for correct), "comment": str}}; all in one transaction, then the lease goes."""
        user_id = self.ctx.users.reviewer(username)
        if not verdicts:
            raise InvalidRequest("Give a verdict for at least one dimension.")
        with write_transaction(self.ctx.db) as db:
            for key, entry in verdicts.items():
                verdict = str(entry.get("verdict", "")).lower()
                score = entry.get("score")
                if verdict == "correct" and score in (None, ""):
                    raise InvalidRequest(f"{key}: a correction needs a score from 1 to 4.")
                corrected = None if verdict != "correct" else float(score)
                repo.add_annotation(db, critique_id=int(critique_id), annotator_id=user_id, dimension=key,
                                    verdict=verdict, corrected_score=corrected,
                                    comment=str(entry.get("comment", ""))[:MAX_COMMENT_CHARS])
            repo.release_leases(db, user_id, repo.critique_item(critique_id))
        return f"Saved {len(verdicts)} verdict(s)."

    def skip_critique(self, username: str | None, critique_id: int) -> str:
        """Give the critique back to the queue without judging it."""
        user_id = self.ctx.users.reviewer(username)
        with write_transaction(self.ctx.db) as db:
            repo.release_leases(db, user_id, repo.critique_item(critique_id))
        return "Skipped."

    def undo_annotation(self, username: str | None) -> dict[str, Any] | None:
        """Take back this reviewer's last submit and show that critique again; None when there is
        nothing to undo."""
        user_id = self.ctx.users.reviewer(username)
        with write_transaction(self.ctx.db) as db:
            critique_id = repo.last_annotated_critique(db, user_id)
            if critique_id is None:
                return None
            repo.delete_annotations(db, critique_id, user_id)
        return self.critique(username, critique_id)

    def critique_progress(self, username: str | None) -> dict[str, int]:
        """This view's counts: critiques reviewed by you, left for you, reviewed by anyone, in all."""
        user_id = self.ctx.users.reviewer(username)
        with self.ctx.db() as db:
            return self._critique_progress(db, user_id)

    @staticmethod
    def _critique_progress(db: Any, user_id: str) -> dict[str, int]:
        mine = repo.count_annotated_critiques(db, annotator_id=user_id)
        remaining = repo.count_critiques_to_review(db, user_id)
        return {"mine": mine, "remaining": remaining, "everyone": repo.count_annotated_critiques(db),
                "total": mine + remaining}

    # --- Compare A/B -----------------------------------------------------------------------------

    def next_pair(self, username: str | None, exclude: Sequence[str] = ()) -> dict[str, Any] | None:
        """Lease and show the next pair (fewest judgements first) with its sides shuffled; `exclude`
        holds the pair keys ("pair:<low>-<high>") skipped in this visit. None when none is left."""
        user_id = self.ctx.users.reviewer(username)
        now = _now()
        chosen = None
        with write_transaction(self.ctx.db) as db:  # the lease only; the pair is read afterwards
            repo.release_leases(db, user_id, kind="pair")
            for low, high in repo.pair_queue(db, judge_id=user_id, now=now, exclude=exclude):
                if repo.take_lease(db, item=repo.pair_item(low, high), holder_id=user_id, now=now,
                                   until=now + LEASE):
                    chosen = (low, high)
                    break
        return None if chosen is None else self._pair_item(*chosen, user_id)

    def _pair_item(self, low: int, high: int, user_id: str) -> dict[str, Any]:
        left_id, right_id = (low, high) if left_first(low, high) else (high, low)
        with self.ctx.db() as db:
            sides = {}
            for side, candidate_id in (("left", left_id), ("right", right_id)):
                row = repo.get_candidate_for_user(db, candidate_id, user_id)
                sides[side] = {"candidate_id": row.id, "label": round_label(row), "prompt": row.used_prompt,
                               "image": self.ctx.store.open(row.image_sha256)}
            # candidate_a / candidate_b: the left and right candidate ids, for pick_pair callers (A = left).
            return {"key": repo.pair_item(low, high), "request": row.session.request, **sides,
                    "candidate_a": left_id, "candidate_b": right_id, "progress": self._pair_progress(db, user_id)}

    def pick_pair(self, username: str | None, candidate_a: int, candidate_b: int, preference: str,
                  left_candidate: int | None = None) -> str:
        """Record which of two images is better (A = candidate_a, B = candidate_b, or tie); `left_candidate` is the
        one the reviewer saw on the left (stored, for position bias)."""
        user_id = self.ctx.users.reviewer(username)
        if preference not in PREFERENCES:
            raise InvalidRequest(f"Pick A, B or tie, not {preference!r}.")
        if int(candidate_a) == int(candidate_b):
            raise InvalidRequest(f"A pair is two different images; both ids are {candidate_a}.")
        if left_candidate is not None and int(left_candidate) not in (int(candidate_a), int(candidate_b)):
            raise InvalidRequest(f"The left image must be one of the pair, not {left_candidate}.")
        with write_transaction(self.ctx.db) as db:
            row = repo.add_pair_judgement(db, candidate_a_id=int(candidate_a), candidate_b_id=int(candidate_b),
                                          preference=preference, judge_id=user_id,
                                          left_candidate_id=None if left_candidate is None else int(left_candidate))
            repo.release_leases(db, user_id, repo.pair_item(candidate_a, candidate_b))
            picked = {"A": row.candidate_a, "B": row.candidate_b}.get(preference)
            return "Recorded a tie." if picked is None else f"Recorded {round_label(picked)} as better."

    def pick_side(self, username: str | None, left_candidate: int, right_candidate: int, side: str) -> str:
        """The Compare view's pick: "left", "right" or "tie" of the pair as shown."""
        preference = {"left": "A", "right": "B", "tie": "tie"}.get(side) if isinstance(side, str) else None
        if preference is None:
            raise InvalidRequest(f"Pick left, right or tie, not {side!r}.")
        return self.pick_pair(username, left_candidate, right_candidate, preference, left_candidate=left_candidate)

    def skip_pair(self, username: str | None, candidate_a: int, candidate_b: int) -> str:
        """Give the pair back to the queue without judging it."""
        user_id = self.ctx.users.reviewer(username)
        with write_transaction(self.ctx.db) as db:
            repo.release_leases(db, user_id, repo.pair_item(candidate_a, candidate_b))
        return "Skipped."

    def undo_pick(self, username: str | None) -> dict[str, Any] | None:
        """Take back this reviewer's last pick and show that pair again; None when there is none."""
        user_id = self.ctx.users.reviewer(username)
        with write_transaction(self.ctx.db) as db:
            row = repo.last_pair_judgement(db, user_id)
            if row is None:
                return None
            low, high = sorted((row.candidate_a_id, row.candidate_b_id))
            repo.delete_pair_judgement(db, row)
            now = _now()
            repo.release_leases(db, user_id, kind="pair")
            repo.take_lease(db, item=repo.pair_item(low, high), holder_id=user_id, now=now, until=now + LEASE)
        return self._pair_item(low, high, user_id)

    def pair_progress(self, username: str | None) -> dict[str, Any]:
        """This view's counts: pairs judged by you, left for you, judged by anyone, in all; and your
        share of left picks."""
        user_id = self.ctx.users.reviewer(username)
        with self.ctx.db() as db:
            return self._pair_progress(db, user_id)

    @staticmethod
    def _pair_progress(db: Any, user_id: str) -> dict[str, Any]:
        total, mine = repo.count_pairs(db, user_id), repo.count_judged_pairs(db, user_id)
        bias = position_bias(repo.human_pair_judgements(db)).get(user_id)
        return {"mine": mine, "remaining": max(total - mine, 0), "everyone": repo.count_judged_pairs(db),
                "total": total, "left_share": None if bias is None else bias["left_share"]}

    # --- agreement -------------------------------------------------------------------------------

    def agreement(self, username: str | None) -> dict[str, Any]:
        """Agreement where two or more reviewers judged the same critique dimension or pair: per item
        (share agreeing with the majority, as the export reads it) and per reviewer pair (Cohen's
        kappa); with each reviewer's position bias."""
        self.ctx.users.reviewer(username)
        with self.ctx.db() as db:
            annotations, judgements = repo.all_annotations(db), repo.human_pair_judgements(db)
            return {"critiques": _agreement(_verdict_labels(annotations)),
                    "pairs": _agreement(_pair_labels(judgements)),
                    "position_bias": position_bias(judgements)}

    def disagreements(self, username: str | None) -> list[dict[str, Any]]:
        """Admins only: the items reviewers disagree on, least agreement first."""
        self.ctx.users.reviewer(username)
        if self.ctx.users.role(username) is not Role.ADMIN:
            raise RoleRequired("The disagreement queue is for admins.")
        found = self.agreement(username)
        items = [{**item, "kind": kind} for kind in ("critiques", "pairs")
                 for item in found[kind]["items"] if item["agreement"] < 1.0]
        with self.ctx.db() as db:
            for item in items:
                item["label"] = _item_label(db, item["kind"], item["item"])
        return sorted(items, key=lambda item: (item["agreement"], item["kind"], str(item["item"])))


def _item_label(db: Any, kind: str, item: list[Any]) -> str:
    """How the UI names a review item: the request, the image(s) as the gallery names them and, for a
    critique, the dimension."""
    if kind == "critiques":
        row = repo.get_critique(db, item[0])
        heading = next((d.heading for d in dimensions(row.candidate.session.task) if d.key == item[1]), item[1])
        return f"“{row.candidate.session.request}” · {round_label(row.candidate)} · {heading}"
    rounds = repo.candidates_by_ids(db, item)
    first, second = rounds[item[0]], rounds[item[1]]
    return f"“{first.session.request}” · {round_label(first)} vs {round_label(second)}"


def _verdict_labels(annotations: list[Annotation]) -> dict[str, dict[tuple[int, str], str]]:
    """reviewer -> (critique id, dimension) -> verdict; a correction is labelled with its score so two
    different corrections do not count as agreeing."""
    labels: dict[str, dict[tuple[int, str], str]] = defaultdict(dict)
    for a in annotations:
        label = a.verdict.value if a.corrected_score is None else f"correct {a.corrected_score:g}"
        labels[a.annotator_id][(a.critique_id, a.dimension)] = label
    return labels


def _pair_labels(judgements: list[PairJudgement]) -> dict[str, dict[tuple[int, int], str]]:
    """reviewer -> (lower, higher candidate id) -> preference for the lower id's image (A), the other
    (B), tie."""
    labels: dict[str, dict[tuple[int, int], str]] = defaultdict(dict)
    for j in judgements:
        if j.judge_id is None:
            continue
        low, high = sorted((j.candidate_a_id, j.candidate_b_id))
        preference = j.preference if j.candidate_a_id == low else {"A": "B", "B": "A"}.get(j.preference, j.preference)
        labels[j.judge_id][(low, high)] = preference
    return labels


def _agreement(labels: dict[str, dict[Any, str]]) -> dict[str, Any]:
    by_item: dict[Any, list[str]] = defaultdict(list)
    for per_item in labels.values():
        for item, label in per_item.items():
            by_item[item].append(label)
    items = []
    for item, given in sorted(by_item.items(), key=lambda kv: repr(kv[0])):
        if len(given) < 2:
            continue
        label, share = majority(given)
        items.append({"item": list(item), "judgements": len(given), "majority": label, "agreement": share})
    return {"items": items, "reviewer_pairs": [p.to_dict() for p in reviewer_pairs(labels)]}


def position_bias(judgements: list[PairJudgement]) -> dict[str, dict[str, Any]]:
    """Per reviewer: how many A/B picks (ties aside) with the shown side recorded, and the share of
    those that went to the left image (0.5 is no bias)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for j in judgements:
        if j.judge_id is None or j.left_candidate_id is None or j.preference == "tie":
            continue
        picked = j.candidate_a_id if j.preference == "A" else j.candidate_b_id
        counts[j.judge_id][0] += int(picked == j.left_candidate_id)
        counts[j.judge_id][1] += 1
    return {judge: {"left": left, "picks": picks, "left_share": left / picks}
            for judge, (left, picks) in counts.items()}
