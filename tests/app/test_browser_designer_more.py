"""Issue 17, items 4, 7, 9, 12 and 16 in a browser, at 1280 px and on a 390 px phone: the selected image's
scores, its strip captions and its actions, a huge upload scaled down with a note, the health line
that turns ready by itself, messages in the user's terms, and the export panel. The wiring and the page
are under test here, over the test doubles (the models' load is held by a gate, so "loading" is seen)."""

from __future__ import annotations

import io
import re
import threading
import zipfile

import pytest
from PIL import Image
from sqlalchemy import select

from storage.models import CandidateRow, SessionRow
from tests.app.conftest import launched, make_service
from tests.app.test_browser_designer import ERROR_BADGES, page, toast  # noqa: F401 (page: the fixture, over this app_url)
from tests.app.test_designer import varied_studio
from ui import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROMPT = "a paper boat on a pond"


def gated_studio():
    """The varied scripted models with a `load` that waits for `gate`: the test decides when the
    models have finished loading (open by default, so runs never wait)."""
    studio = varied_studio()
    studio.gate = threading.Event()
    studio.gate.set()
    studio.load = lambda: studio.gate.wait(60)
    return studio


@pytest.fixture(scope="module")
def app_url(module_dir):
    service = make_service(module_dir, gated_studio())
    with launched(service) as url:
        yield url, service


def candidates(service, prompt: str) -> list[CandidateRow]:
    """The newest session with this prompt: its images, in round order."""
    with service.sessions() as db:
        session = db.scalars(select(SessionRow).where(SessionRow.request == prompt)
                             .order_by(SessionRow.created_at.desc())).first()
        return list(db.scalars(select(CandidateRow).where(CandidateRow.session_id == session.id)
                               .order_by(CandidateRow.round_index)))


def box(page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not shown"
    return found


# --- 9. the health line turns ready by itself ---------------------------------------------------------

def test_the_health_line_turns_ready_without_a_reload(page):
    service = page.service
    models = service.health_check.models
    models.gate.clear()
    service.health_check.state = "⏳ Models are loading…"
    warming = threading.Thread(target=service.warm_up, daemon=True)
    warming.start()
    try:
        page.goto(page.url_root)
        browser.wait_text(page, "#rr-health", "loading")
        page.wait_for_timeout(1500)  # a tick or two while the load goes on: still loading
        assert "loading" in page.locator("#rr-health").inner_text()
        page.evaluate("() => { window.rrSamePage = true; }")
    finally:
        models.gate.set()
        warming.join(10)
    browser.wait_text(page, "#rr-health", "ready")
    assert "loading" not in page.locator("#rr-health").inner_text()
    assert page.evaluate("() => window.rrSamePage === true")  # no reload happened


# --- 4. the large view, the strip and the image's actions --------------------------------------------

def test_the_selected_image_has_its_scores_and_actions_on_screen(page):
    page.evaluate("() => window.scrollTo(0, 0)")  # where a designer starts: the form fills the first screen
    browser.run_create(page, PROMPT, rounds=2)
    width = page.viewport_size["width"]
    assert page.locator("#create-image img").count() == 1
    # The run brought its result into view, and the image (loading="lazy") loaded, large.
    page.wait_for_function("""() => { const img = document.querySelector('#create-image img');
        const box = img && img.getBoundingClientRect();
        return img && img.naturalWidth > 0 && box.top >= 0 && box.bottom <= window.innerHeight + 1; }""",
                           timeout=browser.STEP_MS)
    shown = box(page, "#create-image img")
    assert shown["width"] >= 300 and shown["height"] >= 300, shown
    assert re.search(r"Reward: \d", page.locator("#create-scores").inner_text())
    scores = box(page, "#create-scores")
    assert scores["x"] + scores["width"] <= width + 1
    for action in ("#create-keep", "#create-use-prompt", "#create-edit-this"):
        button = box(page, action)
        assert button["x"] + button["width"] <= width + 1, action


def test_the_strip_captions_are_readable(page):
    labels = page.locator("#create-gallery .thumbnail-item .caption-label")
    assert labels.count() == 2
    for index in range(2):
        label = labels.nth(index)
        text = label.inner_text()
        assert re.fullmatch(rf"(★ )?R{index + 1} · \d\.\d\d", text.strip()), text  # the round and its reward
        assert label.is_visible()
        clipped = label.evaluate("(el) => el.scrollWidth > el.clientWidth + 1")
        assert not clipped, f"caption cut off: {text!r}"
        size = float(label.evaluate("(el) => getComputedStyle(el).fontSize").removesuffix("px"))
        opacity = float(label.evaluate("(el) => getComputedStyle(el).opacity"))
        assert size >= 11 and opacity >= 0.7, (size, opacity)


def test_keep_names_the_round_the_user_sees(page):
    page.locator("#create-gallery .thumbnail-item").nth(1).click()
    browser.wait_text(page, "#create-caption", "Round 2")
    page.click("#create-keep")
    toast(page, "Kept round 2, image #1")
    kept = candidates(page.service, PROMPT)[1]
    text = page.locator(".toast-wrap").inner_text()
    assert not re.search(r"\bids?\b|candidate|row", text, re.IGNORECASE), text  # no database words
    with page.service.sessions() as db:
        assert db.get(CandidateRow, kept.id).chosen


def test_use_its_prompt_fills_the_next_round_box(page):
    first = candidates(page.service, PROMPT)[0]
    page.locator("#create-gallery .thumbnail-item").nth(0).click()
    browser.wait_text(page, "#create-caption", "Round 1")
    page.fill("#create-refined textarea", "something else")
    page.click("#create-use-prompt")
    expected = first.refined_request or first.request
    page.wait_for_function("(v) => document.querySelector('#create-refined textarea').value === v", arg=expected)
    toast(page, "round 1's prompt")


def test_edit_this_sends_the_image_to_the_edit_tab(page):
    page.get_by_role("tab", name="Create").click()
    page.click("#create-edit-this")
    page.wait_for_selector("#tab-edit", state="visible")
    page.wait_for_selector("#edit-source img")
    assert page.locator(ERROR_BADGES.format(tab="edit")).count() == 0
    page.get_by_role("tab", name="Create").click()


# --- 7. a huge upload is scaled down on upload, with a note --------------------------------------------

def test_a_huge_upload_is_scaled_down_with_a_note(page, tmp_path):
    huge = tmp_path / "poster.png"
    Image.new("RGB", (8000, 6000), (90, 160, 220)).save(huge, optimize=True)  # 48 megapixels
    assert huge.stat().st_size < 2_000_000
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-upload input[type=file]").set_input_files(str(huge))
    browser.wait_text(page, "#edit-upload-note", "Scaled down from 8000×6000", browser.RUN_MS)
    page.wait_for_function("() => document.querySelector('#edit-source img')?.naturalWidth > 0")
    natural = page.locator("#edit-source img").evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    assert 0 < natural[0] < 8000 and 0 < natural[1] < 6000, natural
    assert f"{natural[0]}×{natural[1]}" in page.locator("#edit-upload-note").inner_text()
    assert page.locator(ERROR_BADGES.format(tab="edit")).count() == 0
    page.get_by_role("tab", name="Create").click()


# --- 16. the export panel -----------------------------------------------------------------------------

def export(page, fmt: str, expect: str) -> str:
    """Export `fmt` from the Sessions tab's panel; returns the note once it says `expect`."""
    page.get_by_role("tab", name="Sessions").click()
    page.wait_for_selector("#export-panel", state="visible")
    page.locator("#export-format input").click()
    page.get_by_role("option", name=fmt, exact=True).click()
    page.click("#export-run")
    browser.wait_text(page, "#export-note", expect)
    return page.locator("#export-note").inner_text()


def test_an_empty_export_says_so_and_offers_no_link(page):
    note = export(page, "sft", "Nothing to export")  # no critique is annotated here
    assert "Nothing to export" in note, note
    assert page.locator("#export-note a").count() == 0
    assert page.locator("#export-file a").count() == 0
    page.get_by_role("tab", name="Create").click()


def test_an_export_with_data_links_through_the_checked_route(page):
    first, second = candidates(page.service, PROMPT)[:2]
    page.service.pick_pair(None, first.id, second.id, "A")
    note = export(page, "pairs", "Wrote")
    assert re.search(r"Wrote \*?\*?\d+", note), note
    link = page.locator("#export-note a")
    assert link.count() == 1 and "Download" in link.inner_text()
    href = link.get_attribute("href")
    assert href.startswith("exports/") or "/exports/" in href, href
    response = page.request.get(page.url_root + href.lstrip("/") if not href.startswith("http") else href)
    assert response.ok, response.status
    with zipfile.ZipFile(io.BytesIO(response.body())) as archive:
        names = archive.namelist()
    assert any(name.endswith(".jsonl") for name in names), names
    assert not any(name.startswith("/") for name in names), names  # relative paths: portable
    command = page.locator("#export-command").inner_text()
    assert "python -m storage.export --format pairs" in command
    assert "--database-url 'sqlite:///" in command and "studio.sqlite3" in command, command
    page.get_by_role("tab", name="Create").click()
