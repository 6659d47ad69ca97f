"""An admin purges a session its owner hid, in a browser with sign-in on at 1280 px (issue 17 item 8):
the Sessions tab lists it with its owner and what hangs on it, the question says exactly what goes,
Cancel keeps it, Yes removes every row and the image files no other session uses. Designers and
annotators never see the panel.

The sessions are made through the service over the scripted test doubles (the page is under test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from storage.models import Annotation, CandidateRow, CritiqueRow, PairJudgement, SessionRow
from studio.users import AuthSettings
from tests.app.conftest import ScriptedModels, launched, make_service, rows
from tests.app.test_purge_api import AUTH, PASSWORDS, hide_a_reviewed_session
from ui import browser
from ui.browser import wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 900}


@contextmanager
def studio_in_browser(root) -> Iterator[tuple]:
    """The app with alice's hidden session and her visible one; yields (open_page, service, hidden id),
    where open_page(name) signs `name` in on a fresh 1280 px page."""
    from playwright.sync_api import sync_playwright

    service = make_service(root, ScriptedModels(), auth=AuthSettings.parse(AUTH))
    hidden = hide_a_reviewed_session(service)
    list(service.run_loop("alice", "a kite", {"rounds": 1, "steps": 1}))
    with launched(service) as url, sync_playwright() as playwright:
        chromium = browser.launch_chromium(playwright)

        def open_page(name: str):
            page = chromium.new_context(viewport=DESKTOP).new_page()
            browser.sign_in(page, url, name, PASSWORDS[name])
            page.get_by_role("tab", name="Sessions").click()
            wait_text(page, "#sessions-table", "request")
            return page

        try:
            yield open_page, service, hidden
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def studio(module_dir):
    with studio_in_browser(module_dir) as found:
        yield found


@pytest.mark.parametrize("name", ["alice", "carol"])
def test_designers_and_annotators_never_see_the_purge_panel(studio, name):
    open_page, _, _ = studio
    page = open_page(name)
    page.wait_for_timeout(500)  # the load has shown what it shows
    assert page.locator("#purge-panel").is_hidden() and page.locator("#purge-ask").count() == 0
    assert "hidden by their owners" not in page.locator("#tab-sessions").inner_text()


def test_an_admin_purges_a_hidden_session_after_being_told_what_goes(studio):
    open_page, service, hidden = studio
    with service.sessions() as db:
        candidates = list(db.scalars(select(CandidateRow).where(CandidateRow.session_id == hidden)))
        critiques = list(db.scalars(select(CritiqueRow.id)
                                    .where(CritiqueRow.candidate_id.in_([c.id for c in candidates]))))
    files = {c.image_sha256 for c in candidates}
    page = open_page("root")
    wait_text(page, "#purge-table", "a lighthouse")
    table = page.locator("#purge-table").bounding_box()
    assert table["x"] + table["width"] <= DESKTOP["width"] + 1
    assert "alice" in page.locator("#purge-table").inner_text()
    assert "a kite" not in page.locator("#purge-table").inner_text()  # visible sessions are not listed

    page.locator("#purge-table span.text:visible", has_text="a lighthouse").first.click()
    wait_text(page, "#purge-selected", "Selected: “a lighthouse” by alice · 1 annotation(s) · 1 A/B pick(s)")
    page.click("#purge-ask")
    wait_text(page, "#purge-confirm-text", "Purge “a lighthouse” (alice's session)")
    question = page.locator("#purge-confirm-text").inner_text()
    for part in ("1 round", "2 images", "2 critiques", "1 annotation", "1 A/B pick", "by carol",
                 "2 image files no other session uses"):
        assert part in question, (part, question)
    page.click("#purge-cancel")
    page.wait_for_selector("#purge-confirm", state="hidden")
    assert rows(service, SessionRow, SessionRow.id == hidden)  # Cancel keeps it

    page.click("#purge-ask")
    wait_text(page, "#purge-confirm-text", "Purge “a lighthouse”")
    page.click("#purge-confirm-yes")
    wait_text(page, ".toast-wrap, [data-testid=toast-body]", "Purged “a lighthouse”")
    wait_text(page, "#purge-selected", "No session is hidden by its owner")
    page.wait_for_selector("#purge-confirm", state="hidden")
    assert "a lighthouse" not in page.locator("#purge-table").inner_text()
    assert rows(service, SessionRow, SessionRow.id == hidden) == []
    assert rows(service, CandidateRow, CandidateRow.session_id == hidden) == []
    assert rows(service, CritiqueRow, CritiqueRow.id.in_(critiques)) == []
    assert rows(service, Annotation) == [] and rows(service, PairJudgement) == []
    assert not any(service.store.exists(sha) for sha in files)
    assert [s.request for s in rows(service, SessionRow)] == ["a kite"]
