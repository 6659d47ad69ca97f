"""The UI's event handlers: who acts (from gr.Request), one service call, one mapper.

Every handler takes `request: gr.Request` by name, so Gradio always passes it (a request hidden in
*args is never passed, and the caller then acts as nobody) and returns `{component: value}` for the
components it sets. The service is called by its method names only; no model, loop or storage
logic lives here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import pandas as pd

from rr_core.errors import RRError
from rr_core.images import load_image
from studio.views import RunView
from studio.container import Services
from ui import mappers
from ui.errors import shown_errors
from ui.identity import username_of
from ui.panels import ResultsPanel, StudioUI

TOKEN_REFRESH_S = 0.25
Values = mappers.Values


class StudioHandlers:
    """The handlers of one app: `service` does the work, `ui` names the components they set."""

    def __init__(self, service: Services, ui: StudioUI) -> None:
        self.service = service
        self.ui = ui

    # --- runs ----------------------------------------------------------------------------------

    def _stream(self, panel: ResultsPanel, views: Iterator[RunView],
                extra: Callable[[RunView], Values] = lambda view: {}) -> Iterator[Values]:
        """A run's views as panel values: every structural change, streaming text at most every
        TOKEN_REFRESH_S (and then only the text)."""
        last, previous_rounds = 0.0, -1
        for view in views:
            now = time.monotonic()
            candidates = view.rounds[-1].candidates if view.rounds else []
            structural = (view.done or len(view.rounds) != previous_rounds or not view.live_text
                          or bool(candidates and candidates[-1].critique))
            if not structural and now - last < TOKEN_REFRESH_S:
                continue
            previous_rounds, last = len(view.rounds), now
            yield {**mappers.result_values(panel, view), **extra(view)} if structural \
                else mappers.result_values(panel, view, light=True)

    def _slider(self, view: RunView) -> Values:
        pair = mappers.slider_value(view)
        return {} if pair is None else {self.ui.slider: pair}

    @shown_errors
    def create(self, prompt: str, negative: str, seed: float | None, randomize: bool, steps: float | None,
               rounds: float | None, candidates: float | None, threshold: float | None, stop_early: bool,
               request: gr.Request) -> Iterator[Values]:
        """Create: run the loop on a prompt."""
        settings = mappers.settings_of(negative, seed, randomize, steps, rounds, candidates, threshold,
                                       stop_early)
        views = self.service.run_loop(username_of(request), prompt, settings)
        yield from self._stream(self.ui.create, views, lambda view: {self.ui.create_seed: settings["seed"]})

    @shown_errors
    def edit(self, source: str | None, instruction: str, seed: float | None, randomize: bool,
             steps: float | None, rounds: float | None, threshold: float | None, stop_early: bool,
             request: gr.Request) -> Iterator[Values]:
        """Edit: run the loop on an uploaded source image and an instruction."""
        if not source:
            raise gr.Error("Upload a source image to edit (drag, paste, or send one from Create).")
        settings = mappers.settings_of("", seed, randomize, steps, rounds, 1, threshold, stop_early)
        views = self.service.run_loop(username_of(request), instruction, settings,
                                      source_image=load_image(source))
        yield from self._stream(self.ui.edit, views,
                                lambda view: {self.ui.edit_seed: settings["seed"], **self._slider(view)})

    def _more(self, session_id: str, prompt: str, request: gr.Request) -> Iterator[RunView]:
        if not session_id:
            raise gr.Error("Run a session first (or open one from Sessions).")
        return self.service.continue_session(username_of(request), session_id, prompt)

    @shown_errors
    def more_create(self, session_id: str, prompt: str, request: gr.Request) -> Iterator[Values]:
        """One more round of the Create session with the (edited) refined prompt."""
        yield from self._stream(self.ui.create, self._more(session_id, prompt, request))

    @shown_errors
    def more_edit(self, session_id: str, prompt: str, request: gr.Request) -> Iterator[Values]:
        """One more round of the Edit session with the (edited) refined prompt."""
        yield from self._stream(self.ui.edit, self._more(session_id, prompt, request), self._slider)

    def _retry(self, panel: ResultsPanel, round_id: int | None, request: gr.Request) -> Values:
        if round_id is None:
            raise gr.Error("There is no stored image to critique again.")
        return mappers.result_values(panel, self.service.retry_critique(username_of(request), round_id))

    @shown_errors
    def retry_create(self, round_id: int | None, request: gr.Request) -> Values:
        """Critique the Create panel's image again (after a critique that did not parse)."""
        return self._retry(self.ui.create, round_id, request)

    @shown_errors
    def retry_edit(self, round_id: int | None, request: gr.Request) -> Values:
        """Critique the Edit panel's image again (after a critique that did not parse)."""
        return self._retry(self.ui.edit, round_id, request)

    @shown_errors
    def stop(self, request: gr.Request) -> None:
        """Stop this user's runs after their current step."""
        gr.Info(self.service.stop(username_of(request)))

    @shown_errors
    def keep(self, round_id: int | None, request: gr.Request) -> None:
        """Mark the shown image as kept."""
        if round_id is None:
            raise gr.Error("No image to keep yet.")
        gr.Info(self.service.keep(username_of(request), round_id))

    def _select(self, panel: ResultsPanel, session_id: str, index: int, request: gr.Request) -> Values:
        view = self.service.open_session(username_of(request), session_id) if session_id else None
        flat = [c for r in view.rounds for c in r.candidates] if view else []
        return {panel.round_id: flat[index].round_id if 0 <= index < len(flat) else None}

    @shown_errors
    def select_create(self, session_id: str, evt: gr.SelectData, request: gr.Request) -> Values:
        """A click in the Create gallery makes that image the one to keep, retry or edit."""
        return self._select(self.ui.create, session_id, evt.index, request)

    @shown_errors
    def select_edit(self, session_id: str, evt: gr.SelectData, request: gr.Request) -> Values:
        """A click in the Edit gallery makes that image the one to keep or retry."""
        return self._select(self.ui.edit, session_id, evt.index, request)

    @shown_errors
    def to_edit(self, round_id: int | None, request: gr.Request) -> Values:
        """Send the shown Create image to the Edit tab as its source."""
        if round_id is None:
            raise gr.Error("No image yet: run a round first.")
        return {self.ui.source: self.service.round_image(username_of(request), round_id),
                self.ui.tabs: gr.Tabs(selected="edit")}

    # --- sessions and export -----------------------------------------------------------------

    @shown_errors
    def sessions(self, search: str, request: gr.Request) -> Values:
        """This user's sessions, filtered by prompt text."""
        rows = self.service.list_sessions(username_of(request), search)
        return {self.ui.table: mappers.sessions_frame(rows)}

    @shown_errors
    def pick_session(self, table: pd.DataFrame | None, evt: gr.SelectData, request: gr.Request) -> Values:
        """A click on a sessions row fills in its id (the row is this user's already)."""
        return {self.ui.chosen: mappers.picked_session(table, evt.index)}

    @shown_errors
    def open(self, session_id: str, request: gr.Request) -> Values:
        """Reopen a session in its own tab, ready to continue."""
        view = self.service.open_session(username_of(request), session_id.strip())
        if view.task == "edit":
            return {**mappers.result_values(self.ui.edit, view), **self._slider(view),
                    self.ui.tabs: gr.Tabs(selected="edit")}
        return {**mappers.result_values(self.ui.create, view), self.ui.tabs: gr.Tabs(selected="create")}

    @shown_errors
    def delete(self, session_id: str, search: str, request: gr.Request) -> Values:
        """Delete a session, then refresh the table."""
        gr.Info(self.service.delete_session(username_of(request), session_id.strip()))
        return {**self.sessions(search, request), self.ui.chosen: ""}

    @shown_errors
    def counts(self, request: gr.Request) -> Values:
        """The export panel's counts."""
        return {self.ui.counts: mappers.counts_text(self.service.stats(username_of(request)))}

    @shown_errors
    def export(self, fmt: str, parquet: bool, request: gr.Request) -> Values:
        """Write a training export and show the file, its size and the same command line."""
        result = self.service.export(username_of(request), fmt, parquet)
        return {self.ui.export_file: result["file"],
                self.ui.export_note: f"Wrote **{result['count']}** {fmt} record(s).",
                self.ui.export_command: result["command"], **self.counts(request)}

    # --- review: critiques ---------------------------------------------------------------------
    # Confirmations go to the view's note line, not a toast, so nothing covers the form.

    def _critique(self, request: gr.Request, trail: dict[str, list[Any]] | None, note: str = "",
                  item: dict[str, Any] | None = None) -> Values:
        """The review form for `item`, else for the next critique in the queue (skips left out)."""
        trail = _trail(trail)
        user = username_of(request)
        if item is None:
            item = self.service.next_critique(user, trail["skipped"])
        progress = None if item is not None else self.service.critique_progress(user)
        return mappers.critique_values(self.ui.annotate, item, trail, progress, note)

    @shown_errors
    def next_critique(self, trail: dict[str, list[Any]] | None, request: gr.Request) -> Values:
        """Open the Review view: the next critique for this reviewer."""
        return self._critique(request, trail)

    @shown_errors
    def submit(self, form: Values, request: gr.Request) -> Values:
        """Store the review form's verdicts, then load the next critique; `form` is the
        `{component: value}` dict Gradio passes for the panel's input set."""
        critique_id, verdicts = mappers.verdicts_of(self.ui.annotate, form)
        note = self.service.annotate(username_of(request), critique_id, verdicts)
        trail = _trail(form.get(self.ui.annotate.trail))
        trail["history"] = [*trail["history"], critique_id]
        return self._critique(request, trail, note)

    @shown_errors
    def skip(self, loaded: dict[str, Any] | None, trail: dict[str, list[Any]] | None,
             request: gr.Request) -> Values:
        """Leave this critique for later (for this visit) and load the next."""
        trail = _trail(trail)
        if loaded:
            self.service.skip_critique(username_of(request), loaded["id"])
            trail["skipped"] = [*trail["skipped"], loaded["id"]]
            trail["history"] = [*trail["history"], loaded["id"]]
        return self._critique(request, trail, "Skipped.")

    @shown_errors
    def back(self, trail: dict[str, list[Any]] | None, request: gr.Request) -> Values:
        """Show the previous critique again (submitted or skipped), with your verdicts on it."""
        trail = _trail(trail)
        if not trail["history"]:
            return {self.ui.annotate.note: "Nothing to go back to yet."}
        *rest, previous = trail["history"]
        trail["history"] = rest
        trail["skipped"] = [i for i in trail["skipped"] if i != previous]
        item = self.service.critique_for_review(username_of(request), previous)
        return self._critique(request, trail, "Back to the previous critique.", item)

    @shown_errors
    def undo(self, trail: dict[str, list[Any]] | None, request: gr.Request) -> Values:
        """Take back your last submit and show that critique again."""
        item = self.service.undo_annotation(username_of(request))
        if item is None:
            return {self.ui.annotate.note: "Nothing to undo."}
        trail = _trail(trail)
        trail["history"] = [i for i in trail["history"] if i != item["critique_id"]]
        return self._critique(request, trail, "Undone: your last submit was taken back.", item)

    # --- review: A/B -----------------------------------------------------------------------------

    def _pair(self, request: gr.Request, trail: dict[str, list[Any]] | None, note: str = "",
              pair: dict[str, Any] | None = None) -> Values:
        """The Compare view for `pair`, else for the next pair in the queue (skips left out)."""
        trail = {"skipped": list((trail or {}).get("skipped", []))}
        user = username_of(request)
        if pair is None:
            pair = self.service.next_pair(user, trail["skipped"])
        progress = None if pair is not None else self.service.pair_progress(user)
        return mappers.pair_values(self.ui.pair, pair, trail, progress, note)

    @shown_errors
    def next_pair(self, trail: dict[str, list[Any]] | None, request: gr.Request) -> Values:
        """Open the Compare view: the next pair for this reviewer, sides shuffled."""
        return self._pair(request, trail)

    def _pick(self, pair: dict[str, Any] | None, side: str, trail: dict[str, list[Any]] | None,
              request: gr.Request) -> Values:
        if not pair:
            raise gr.Error("No pair loaded.")
        note = self.service.pick_side(username_of(request), pair["left"], pair["right"], side)
        return self._pair(request, trail, note)

    @shown_errors
    def pick_left(self, pair: dict[str, Any] | None, trail: dict[str, list[Any]] | None,
                  request: gr.Request) -> Values:
        """The left image is better."""
        return self._pick(pair, "left", trail, request)

    @shown_errors
    def pick_right(self, pair: dict[str, Any] | None, trail: dict[str, list[Any]] | None,
                   request: gr.Request) -> Values:
        """The right image is better."""
        return self._pick(pair, "right", trail, request)

    @shown_errors
    def pick_tie(self, pair: dict[str, Any] | None, trail: dict[str, list[Any]] | None,
                 request: gr.Request) -> Values:
        """Neither is better."""
        return self._pick(pair, "tie", trail, request)

    @shown_errors
    def skip_pair(self, pair: dict[str, Any] | None, trail: dict[str, list[Any]] | None,
                  request: gr.Request) -> Values:
        """Leave this pair for later (for this visit) and load the next."""
        trail = {"skipped": list((trail or {}).get("skipped", []))}
        if pair:
            self.service.skip_pair(username_of(request), pair["left"], pair["right"])
            trail["skipped"].append(pair["key"])
        return self._pair(request, trail, "Skipped.")

    @shown_errors
    def undo_pick(self, trail: dict[str, list[Any]] | None, request: gr.Request) -> Values:
        """Take back your last pick and show that pair again."""
        pair = self.service.undo_pick(username_of(request))
        if pair is None:
            return {self.ui.pair.note: "Nothing to undo."}
        return self._pair(request, trail, "Undone: your last pick was taken back.", pair)

    @shown_errors
    def agreement(self, request: gr.Request) -> Values:
        """Agreement figures; admins also get the disagreement queue."""
        user = username_of(request)
        queue = self.service.disagreements(user) if self.service.role(user).value == "admin" else None
        return {self.ui.agreement.text: mappers.agreement_text(self.service.agreement(user), queue)}

    # --- page load ---------------------------------------------------------------------------

    def load(self, request: gr.Request) -> Values:
        """Who is signed in, the models' state, and which tabs their role may see."""
        health = self.service.health()
        try:
            user = username_of(request)
            role = self.service.role(user)
            who = f"Signed in as **{self.service.user(user)}** ({role.value})"
        except RRError as exc:
            return {self.ui.who: str(exc), self.ui.health: health,
                    self.ui.annotate_tab: gr.Tab(visible=False), self.ui.sessions_tab: gr.Tab(visible=False),
                    self.ui.export_group: gr.Column(visible=False)}
        reviewer = role.value in ("annotator", "admin")
        return {self.ui.who: who, self.ui.health: health, self.ui.annotate_tab: gr.Tab(visible=reviewer),
                self.ui.sessions_tab: gr.Tab(visible=True), self.ui.export_group: gr.Column(visible=reviewer)}


def _trail(trail: dict[str, list[Any]] | None) -> dict[str, list[Any]]:
    """A fresh copy of the Review view's trail: critiques skipped this visit, and those seen (for Back)."""
    trail = trail or {}
    return {"skipped": list(trail.get("skipped", [])), "history": list(trail.get("history", []))}
