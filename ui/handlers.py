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
from storage.errors import NotFound
from studio.runs import check_run
from studio.session_cards import session_cards
from studio.uploads import prepare_upload
from studio.views import RunView
from studio.container import Services
from ui import mappers
from ui.errors import shown_errors
from ui.identity import username_of
from ui.panels import ResultsPanel, StudioUI

TOKEN_REFRESH_S = 0.25
NO_SESSION = "That session is not in your sessions list any more (deleted, or someone else's)."
PURGED_ALREADY = "That session is no longer stored (purged already?): refresh the list."
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
    def check_create(self, prompt: str, negative: str, seed: float | None, randomize: bool, steps: float | None,
                     rounds: float | None, candidates: float | None, threshold: float | None, stop_early: bool,
                     request: gr.Request) -> None:
        """Refuse bad Create input before the run starts. Wired with no outputs and followed by the run
        on success only, so a refusal leaves every output as it was and only the toast speaks."""
        username_of(request)
        check_run(prompt, mappers.settings_of(negative, seed, randomize, steps, rounds, candidates, threshold,
                                              stop_early))

    @shown_errors
    def check_edit(self, source: str | None, instruction: str, seed: float | None, randomize: bool,
                   steps: float | None, rounds: float | None, threshold: float | None, stop_early: bool,
                   request: gr.Request) -> None:
        """Refuse bad Edit input (no or unreadable source image, bad instruction or settings) before
        the run starts, like check_create."""
        username_of(request)
        if not source:
            raise gr.Error("Upload a source image to edit (drag, paste, or send one from Create).")
        load_image(source)
        check_run(instruction, mappers.settings_of("", seed, randomize, steps, rounds, 1, threshold, stop_early))

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
        if prompt and prompt.strip():
            check_run(prompt)
        return self.service.continue_session(username_of(request), session_id, prompt)

    @shown_errors
    def check_more(self, session_id: str, prompt: str, request: gr.Request) -> None:
        """Refuse "one more round" before it starts when there is no session or the prompt is bad."""
        username_of(request)
        if not session_id:
            raise gr.Error("Run a session first (or open one from Sessions).")
        if prompt and prompt.strip():
            check_run(prompt)

    @shown_errors
    def more_create(self, session_id: str, prompt: str, request: gr.Request) -> Iterator[Values]:
        """One more round of the Create session with the (edited) refined prompt."""
        yield from self._stream(self.ui.create, self._more(session_id, prompt, request))

    @shown_errors
    def more_edit(self, session_id: str, prompt: str, request: gr.Request) -> Iterator[Values]:
        """One more round of the Edit session with the (edited) refined prompt."""
        yield from self._stream(self.ui.edit, self._more(session_id, prompt, request), self._slider)

    def _retry(self, panel: ResultsPanel, candidate_id: int | None, request: gr.Request) -> Values:
        if candidate_id is None:
            raise gr.Error("There is no stored image to critique again.")
        return mappers.result_values(panel, self.service.retry_critique(username_of(request), candidate_id))

    @shown_errors
    def retry_create(self, candidate_id: int | None, request: gr.Request) -> Values:
        """Critique the Create panel's image again (after a critique that did not parse)."""
        return self._retry(self.ui.create, candidate_id, request)

    @shown_errors
    def retry_edit(self, candidate_id: int | None, request: gr.Request) -> Values:
        """Critique the Edit panel's image again (after a critique that did not parse)."""
        return self._retry(self.ui.edit, candidate_id, request)

    @shown_errors
    def stop(self, request: gr.Request) -> None:
        """Stop this user's runs after their current step."""
        gr.Info(self.service.stop(username_of(request)))

    @shown_errors
    def keep(self, candidate_id: int | None, request: gr.Request) -> None:
        """Mark the shown image as kept."""
        if candidate_id is None:
            raise gr.Error("No stored image to keep yet: wait for its round to finish (or run one).")
        gr.Info(self.service.keep(username_of(request), candidate_id))

    def _open_session(self, session_id: str, request: gr.Request) -> RunView:
        """A session by id, with "not found" said in the user's terms (never the id itself)."""
        try:
            return self.service.open_session(username_of(request), session_id)
        except NotFound as exc:
            raise gr.Error(NO_SESSION) from exc

    def _select(self, panel: ResultsPanel, session_id: str, index: int, request: gr.Request) -> Values:
        if not session_id:
            raise gr.Error("No images yet: run a round first.")
        view = self._open_session(session_id, request)
        chosen = view.candidate_at(index)
        if chosen is None:
            raise gr.Error("That image is no longer in this session; run or reopen it.")
        selected = (chosen.round_index, chosen.candidate_index)
        values = {**mappers.result_values(panel, view, selected=selected)}
        values.pop(panel.refined, None)  # selecting shows an image; it never rewrites the next prompt
        if view.source_image is not None and panel is self.ui.edit:
            values[self.ui.slider] = mappers.slider_value(view, selected)
        return values

    @shown_errors
    def select_create(self, session_id: str, evt: gr.SelectData, request: gr.Request) -> Values:
        """A click on a Create thumbnail shows that image large with its own scores, critique and
        reward, and makes it the one Keep, Retry and Edit act on."""
        return self._select(self.ui.create, session_id, evt.index, request)

    @shown_errors
    def select_edit(self, session_id: str, evt: gr.SelectData, request: gr.Request) -> Values:
        """A click on an Edit thumbnail: as select_create, and the before/after slider follows."""
        return self._select(self.ui.edit, session_id, evt.index, request)

    def _use_prompt(self, panel: ResultsPanel, session_id: str, selected: list[int] | None,
                    request: gr.Request) -> Values:
        if not session_id:
            raise gr.Error("No images yet: run a round first.")
        view = self._open_session(session_id, request)
        focus = view.focus(tuple(selected) if selected else None)
        if focus is None:
            raise gr.Error("No images yet: run a round first.")
        gr.Info(f"The next round will use round {focus.round_index + 1}'s prompt; edit it below if you like.")
        return {panel.refined: view.prompt_of(focus)}

    @shown_errors
    def use_prompt_create(self, session_id: str, selected: list[int] | None, request: gr.Request) -> Values:
        """Put the shown image's refined prompt (else its prompt) in the next-round prompt box."""
        return self._use_prompt(self.ui.create, session_id, selected, request)

    @shown_errors
    def use_prompt_edit(self, session_id: str, selected: list[int] | None, request: gr.Request) -> Values:
        """As use_prompt_create, for the Edit panel."""
        return self._use_prompt(self.ui.edit, session_id, selected, request)

    @shown_errors
    def check_upload(self, path: str | None, request: gr.Request) -> None:
        """Answer a file that is not a usable image at once, in words, with no output touched."""
        if path:
            prepare_upload(path)

    @shown_errors
    def upload_source(self, path: str | None, request: gr.Request) -> Values:
        """Read a dropped file as the Edit source at once: a specific message for a file that is not
        a usable image, and a note when it was scaled down or rounded to the working size."""
        if not path:
            return {}
        prepared = prepare_upload(path)
        values: Values = {self.ui.source: prepared.image}
        if self.ui.upload_note is not None:
            values[self.ui.upload_note] = f"ℹ️ {prepared.note}" if prepared.note else ""
        return values

    @shown_errors
    def to_edit(self, candidate_id: int | None, request: gr.Request) -> Values:
        """Send the shown Create image to the Edit tab as its source."""
        if candidate_id is None:
            raise gr.Error("No stored image yet: wait for its round to finish (or run one).")
        values = {self.ui.source: self.service.candidate_image(username_of(request), candidate_id),
                  self.ui.tabs: gr.Tabs(selected="edit")}
        if self.ui.upload_note is not None:
            values[self.ui.upload_note] = ""
        return values

    # --- sessions and export -----------------------------------------------------------------

    @shown_errors
    def sessions(self, search: str, request: gr.Request) -> Values:
        """This user's sessions, filtered by prompt text: the table and, above it, their best images."""
        cards = session_cards(self.service, username_of(request), search)
        values: Values = {self.ui.table: mappers.sessions_frame(cards)}
        if self.ui.sessions_gallery is not None:
            values[self.ui.sessions_gallery] = mappers.session_gallery(cards)
        return values

    @shown_errors
    def pick_session(self, table: pd.DataFrame | None, evt: gr.SelectData, request: gr.Request) -> Values:
        """A click on a session (its row or its image; both lists share one order) selects it and says
        which one in words; any pending delete question is withdrawn."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        session_id = mappers.picked_session(table, index)
        values: Values = {self.ui.chosen: session_id}
        if self.ui.selected_note is not None:
            values[self.ui.selected_note] = mappers.selected_text(table, session_id)
        if self.ui.confirm_row is not None:
            values[self.ui.confirm_row] = gr.Row(visible=False)
        return values

    @shown_errors
    def open(self, session_id: str, request: gr.Request) -> Values:
        """Reopen a session in its own tab, ready to continue: its results, its request and the
        settings it ran with."""
        if not (session_id or "").strip():
            raise gr.Error("Pick a session first: click its row in the table.")
        view = self._open_session(session_id.strip(), request)
        form = self.ui.edit_form if view.task == "edit" else self.ui.create_form
        restored = mappers.form_values(form, view) if form is not None else {}
        if view.task == "edit":
            return {**mappers.result_values(self.ui.edit, view), **self._slider(view), **restored,
                    self.ui.source: view.source_image, self.ui.tabs: gr.Tabs(selected="edit")}
        return {**mappers.result_values(self.ui.create, view), **restored, self.ui.tabs: gr.Tabs(selected="create")}

    @shown_errors
    def ask_delete(self, session_id: str, table: pd.DataFrame | None, request: gr.Request) -> Values:
        """Ask before deleting, naming the session by its request and saying what happens."""
        if not (session_id or "").strip():
            raise gr.Error("Pick a session first: click its row in the table.")
        values: Values = {}
        if self.ui.confirm_row is not None:
            values[self.ui.confirm_row] = gr.Row(visible=True)
        if self.ui.confirm_text is not None:
            values[self.ui.confirm_text] = (
                f"**Delete {mappers.selected_text(table, session_id).removeprefix('Selected: ')}?** It leaves your "
                "sessions list for good. Reviews and A/B picks that annotators made of its images are kept "
                "for training.")
        return values

    def cancel_delete(self, request: gr.Request) -> Values:
        """Keep the session; hide the question."""
        return {self.ui.confirm_row: gr.Row(visible=False)} if self.ui.confirm_row is not None else {}

    @shown_errors
    def delete(self, session_id: str, search: str, request: gr.Request) -> Values:
        """Delete the selected session (after the question), then refresh the list."""
        if not (session_id or "").strip():
            raise gr.Error("Pick a session first: click its row in the table.")
        try:
            gr.Info(self.service.delete_session(username_of(request), session_id.strip()))
        except NotFound as exc:
            raise gr.Error(NO_SESSION) from exc
        values = {**self.sessions(search, request), self.ui.chosen: ""}
        if self.ui.selected_note is not None:
            values[self.ui.selected_note] = mappers.selected_text(None, "")
        if self.ui.confirm_row is not None:
            values[self.ui.confirm_row] = gr.Row(visible=False)
        return values

    # --- sessions: an admin's purge ------------------------------------------------------------

    def _admin(self, request: gr.Request) -> bool:
        try:
            return self.service.role(username_of(request)).value == "admin"
        except RRError:
            return False

    @shown_errors
    def hidden(self, request: gr.Request) -> Values:
        """Admins: the sessions their owners hid. Anyone else gets nothing (their panel stays hidden)."""
        if self.ui.purge is None or not self._admin(request):
            return {}
        return mappers.hidden_values(self.ui.purge, self.service.hidden_sessions(username_of(request)))

    @shown_errors
    def pick_hidden(self, table: pd.DataFrame | None, evt: gr.SelectData, request: gr.Request) -> Values:
        """A click on a hidden session selects it, names it, and withdraws a pending question."""
        panel = self.ui.purge
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        session_id = mappers.picked_session(table, index)
        return {panel.chosen: session_id, panel.note: mappers.hidden_selected_text(table, session_id),
                panel.confirm_row: gr.Row(visible=False)}

    @shown_errors
    def ask_purge(self, session_id: str, request: gr.Request) -> Values:
        """Ask before purging, saying exactly what the purge removes."""
        if not (session_id or "").strip():
            raise gr.Error("Pick a hidden session first: click its row in the table.")
        try:
            preview = self.service.purge_preview(username_of(request), session_id.strip())
        except NotFound as exc:
            raise gr.Error(PURGED_ALREADY) from exc
        return mappers.purge_question(self.ui.purge, preview)

    def cancel_purge(self, request: gr.Request) -> Values:
        """Keep the session; hide the question."""
        return {self.ui.purge.confirm_row: gr.Row(visible=False)}

    @shown_errors
    def purge(self, session_id: str, request: gr.Request) -> Values:
        """Purge the selected hidden session (after the question), say what went, refresh the list."""
        if not (session_id or "").strip():
            raise gr.Error("Pick a hidden session first: click its row in the table.")
        try:
            gr.Info(self.service.purge_session(username_of(request), session_id.strip()))
        except NotFound as exc:
            raise gr.Error(PURGED_ALREADY) from exc
        return self.hidden(request)

    @shown_errors
    def counts(self, request: gr.Request) -> Values:
        """The export panel's counts."""
        return {self.ui.counts: mappers.counts_text(self.service.stats(username_of(request)))}

    @shown_errors
    def export(self, fmt: str, parquet: bool, request: gr.Request) -> Values:
        """Write a training export and offer it through the checked download route (a zip of the file
        and its images, relative paths; the link works for its maker and admins only); say plainly when
        nothing matched, and show the command line that does the same."""
        result = self.service.export(username_of(request), fmt, parquet, portable=True)
        return {self.ui.export_file: None,
                self.ui.export_note: mappers.export_note(fmt, result["count"], result.get("download")),
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

    def plan(self, rounds: float | None, threshold: float | None, stop_early: bool, request: gr.Request) -> str:
        """The line under a run's settings that says how many rounds it will run and when it stops."""
        return mappers.plan_text(rounds, threshold, stop_early)

    def health_tick(self, request: gr.Request) -> Values:
        """Refresh the models' line while they load; the timer stops once they are ready or failed."""
        values: Values = {self.ui.health: self.service.health_check.headline()}
        if self.ui.health_timer is not None:
            values[self.ui.health_timer] = gr.Timer(active=not self.service.health_check.settled)
        return values

    # --- page load ---------------------------------------------------------------------------

    def load(self, request: gr.Request) -> Values:
        """Who is signed in, the models' state, and which tabs their role may see."""
        health = self.service.health_check.headline()
        try:
            user = username_of(request)
            role = self.service.role(user)
            who = f"Signed in as **{self.service.user(user)}** ({role.value})"
        except RRError as exc:
            values = {self.ui.who: str(exc), self.ui.health: health,
                      self.ui.annotate_tab: gr.Tab(visible=False), self.ui.sessions_tab: gr.Tab(visible=False),
                      self.ui.export_group: gr.Column(visible=False)}
            return {**values, **self._purge_shown(False)}
        reviewer = role.value in ("annotator", "admin")
        return {self.ui.who: who, self.ui.health: health, self.ui.annotate_tab: gr.Tab(visible=reviewer),
                self.ui.sessions_tab: gr.Tab(visible=True), self.ui.export_group: gr.Column(visible=reviewer),
                **self._purge_shown(role.value == "admin")}

    def _purge_shown(self, admin: bool) -> Values:
        """The admins' purge panel: shown to admins only (designers and annotators never see it)."""
        return {self.ui.purge.group: gr.Column(visible=admin)} if self.ui.purge is not None else {}


def _trail(trail: dict[str, list[Any]] | None) -> dict[str, list[Any]]:
    """A fresh copy of the Review view's trail: critiques skipped this visit, and those seen (for Back)."""
    trail = trail or {}
    return {"skipped": list(trail.get("skipped", [])), "history": list(trail.get("history", []))}
