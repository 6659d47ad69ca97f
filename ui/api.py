"""The documented API (docs/api.md): named endpoints with plain JSON in and out for gradio_client;
images travel as PNG data URLs. Like the UI handlers, each endpoint takes who acts from gr.Request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from rr_core.images import data_url
from studio.views import RunView
from studio.container import Services
from ui.errors import shown_errors
from ui.handlers import TOKEN_REFRESH_S
from ui.identity import username_of
from ui.zerogpu import gpu


def register_api(service: Services, gpu_limits: dict[str, Any], critic_limits: dict[str, Any]) -> None:
    """Named endpoints with plain JSON in and out; images travel as PNG data URLs."""

    @gpu
    @shown_errors
    def generate(prompt: str, negative_prompt: str = "", seed: int = 0, steps: int = 0, candidates: int = 1,
                 source_image: str = "", request: gr.Request = None) -> dict:
        """Generate images for a prompt (or edit source_image) without critiquing them; stored as a
        session."""
        settings = {"negative_prompt": negative_prompt, "seed": seed, "steps": steps or None,
                    "candidates": candidates}
        view = service.generate(username_of(request), prompt, settings, source_image or None)
        return view.to_dict(images=True)

    @gpu
    @shown_errors
    def critique(prompt: str, image: str, source_image: str = "", request: gr.Request = None) -> dict:
        """Critique an image (a data URL) for a request; with source_image, as an edit. Stored as a
        session."""
        return service.critique(username_of(request), prompt, image, source_image or None).to_dict()

    @gpu
    @shown_errors
    def run_loop(prompt: str, rounds: int = 3, candidates: int = 1, steps: int = 0, seed: int = 0,
                 stop_threshold: float = 3.5, negative_prompt: str = "", source_image: str = "",
                 request: gr.Request = None) -> Iterator[dict]:
        """Run the Generate-Critique-Refine loop; streams progress, the last message has the images.
        stop_threshold 0 means never stop early."""
        settings = {"rounds": rounds, "candidates": candidates, "steps": steps or None, "seed": seed,
                    "stop_threshold": stop_threshold or None, "negative_prompt": negative_prompt}
        yield from api_stream(service.run_loop(username_of(request), prompt, settings, source_image or None))

    @gpu
    @shown_errors
    def refine_round(session_id: str, prompt: str = "", request: gr.Request = None) -> Iterator[dict]:
        """Run one more round of a session with `prompt` (default: the last refined prompt)."""
        yield from api_stream(service.continue_session(username_of(request), session_id, prompt or None))

    @shown_errors
    def session(session_id: str, images: bool = False, request: gr.Request = None) -> dict:
        """One of your sessions, with every round, critique and (optionally) image."""
        return service.session_dict(username_of(request), session_id, images)

    @shown_errors
    def sessions(search: str = "", request: gr.Request = None) -> list:
        """Your sessions, newest first, optionally filtered by prompt text."""
        return service.list_sessions(username_of(request), search)

    @shown_errors
    def delete_session(session_id: str, request: gr.Request = None) -> str:
        """Delete one of your sessions."""
        return service.delete_session(username_of(request), session_id)

    @shown_errors
    def hidden_sessions(request: gr.Request = None) -> list:
        """Admins: sessions their owners deleted while other users' annotations or A/B picks hung on them
        (kept for training), with how many of each; what /purge_session may remove."""
        return service.hidden_sessions(username_of(request))

    @shown_errors
    def purge_session(session_id: str, request: gr.Request = None) -> str:
        """Admins: remove a session for good with its rounds, critiques, every annotation and A/B pick
        on it, and the images no other session uses; says what it removed."""
        return service.purge_session(username_of(request), session_id)

    @shown_errors
    def keep(candidate_id: int, request: gr.Request = None) -> str:
        """Mark a round's image as kept."""
        return service.keep(username_of(request), candidate_id)

    @shown_errors
    def stop(request: gr.Request = None) -> str:
        """Stop your runs after their current step."""
        return service.stop(username_of(request))

    def critique_json(item: dict | None) -> dict:
        if item is None:
            return {}
        source = item["source_image"]
        return {**item, "image": data_url(item["image"]),
                "source_image": data_url(source) if source is not None else None}

    def pair_json(pair: dict | None) -> dict:
        if pair is None:
            return {}
        return {**pair, "left": {**pair["left"], "image": data_url(pair["left"]["image"])},
                "right": {**pair["right"], "image": data_url(pair["right"]["image"])}}

    @shown_errors
    def annotation_queue(skipped: list | None = None, request: gr.Request = None) -> dict:
        """The next critique to review (annotators/admins), leased to you for a while so no one else
        gets it; `skipped` lists critique ids to leave out. {} when the queue is empty."""
        return critique_json(service.next_critique(username_of(request), skipped))

    @shown_errors
    def review_critique(critique_id: int, request: gr.Request = None) -> dict:
        """One critique by id with your own verdicts on it ("mine"): Back to an earlier item."""
        return critique_json(service.critique_for_review(username_of(request), critique_id))

    @shown_errors
    def annotate(critique_id: int, verdicts: dict, request: gr.Request = None) -> str:
        """Verdicts per dimension: {"text_faithfulness": {"verdict": "accept"|"reject"|"correct",
        "score": 2.0, "comment": "..."}}."""
        return service.annotate(username_of(request), critique_id, verdicts)

    @shown_errors
    def skip_critique(critique_id: int, request: gr.Request = None) -> str:
        """Give a critique back to the queue without judging it."""
        return service.skip_critique(username_of(request), critique_id)

    @shown_errors
    def undo_annotation(request: gr.Request = None) -> dict:
        """Take back your last submit; returns that critique again ({} when nothing to undo)."""
        return critique_json(service.undo_annotation(username_of(request)))

    @shown_errors
    def critique_progress(request: gr.Request = None) -> dict:
        """Review critiques: reviewed by you, left for you, reviewed by anyone, in all."""
        return service.critique_progress(username_of(request))

    @shown_errors
    def next_pair(skipped: list | None = None, request: gr.Request = None) -> dict:
        """Two images of one request you have not compared, sides shuffled per pair ("left", "right",
        each with its candidate id and gallery label), leased to you; {} when none are left."""
        return pair_json(service.next_pair(username_of(request), skipped))

    @shown_errors
    def pick_pair(candidate_a: int, candidate_b: int, preference: str, left_candidate: int = 0,
                  request: gr.Request = None) -> str:
        """Record which image is better: "A" (candidate_a), "B" (candidate_b) or "tie"; left_candidate, when not
        0, is the one you saw on the left."""
        return service.pick_pair(username_of(request), candidate_a, candidate_b, preference, left_candidate or None)

    @shown_errors
    def pick_side(left_candidate: int, right_candidate: int, side: str, request: gr.Request = None) -> str:
        """Pick as shown by next_pair: "left", "right" or "tie" (the side shown is stored)."""
        return service.pick_side(username_of(request), left_candidate, right_candidate, side)

    @shown_errors
    def skip_pair(candidate_a: int, candidate_b: int, request: gr.Request = None) -> str:
        """Give a pair back to the queue without judging it."""
        return service.skip_pair(username_of(request), candidate_a, candidate_b)

    @shown_errors
    def undo_pick(request: gr.Request = None) -> dict:
        """Take back your last pick; returns that pair again ({} when nothing to undo)."""
        return pair_json(service.undo_pick(username_of(request)))

    @shown_errors
    def pair_progress(request: gr.Request = None) -> dict:
        """Compare A/B: pairs compared by you, left for you, by anyone, in all; your share of left picks."""
        return service.pair_progress(username_of(request))

    @shown_errors
    def agreement(request: gr.Request = None) -> dict:
        """Agreement per item and per reviewer pair (Cohen's kappa), and position bias per reviewer."""
        return service.agreement(username_of(request))

    @shown_errors
    def disagreements(request: gr.Request = None) -> list:
        """Admins: the items reviewers disagree on, least agreement first."""
        return service.disagreements(username_of(request))

    @shown_errors
    def export(format: str = "pairs", parquet: bool = False, request: gr.Request = None) -> dict:
        """Write a training export on the server; returns its path, record count, the command line and
        `download`, the link (exports/<token>) that only you, or an admin, can fetch."""
        return service.export(username_of(request), format, parquet)

    @shown_errors
    def stats(request: gr.Request = None) -> dict:
        """Counts of preference pairs and annotated critiques."""
        return service.stats(username_of(request))

    def health() -> str:
        """The preset, the models and whether they are loaded."""
        return service.health()

    for fn, limits in ((generate, gpu_limits), (critique, critic_limits), (run_loop, gpu_limits),
                       (refine_round, gpu_limits)):
        gr.api(fn, api_name=fn.__name__, **limits)
    for fn in (session, sessions, delete_session, hidden_sessions, purge_session, keep, annotation_queue, review_critique, annotate, skip_critique,
               undo_annotation, critique_progress, next_pair, pick_pair, pick_side, skip_pair, undo_pick,
               pair_progress, agreement, disagreements, export, stats, health):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
    gr.api(stop, api_name="stop", concurrency_limit=None)


def api_stream(views: Iterator[RunView]) -> Iterator[dict]:
    """Progress without images while the run streams (at most every TOKEN_REFRESH_S for tokens), then
    the final view with its images."""
    last, view = 0.0, None
    for view in views:
        now = time.monotonic()
        if now - last >= TOKEN_REFRESH_S:
            last = now
            yield view.to_dict()
    if view is not None:
        yield view.to_dict(images=True)
