"""What only a browser shows, with the tiny preset: create two rounds, edit, annotate with the keyboard,
pick A/B and export, each step asserted on the page and in the database, with a screenshot saved to
docs/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from storage.models import Annotation, CritiqueRow, PairJudgement, Round, StudioSession
from tests.app.conftest import launched, make_service, tiny_studio

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
LONG_MS = 180_000


@pytest.fixture(scope="module")
def page_and_service(module_dir):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    service = make_service(module_dir, tiny_studio())
    with launched(service) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_selector("#create-prompt textarea")
        yield page, service
        browser.close()


def set_number(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def rows(service, model, *where):
    with service.sessions() as db:
        return list(db.scalars(select(model).where(*where)))


def check_scores_match(page, prefix: str, critique: CritiqueRow) -> None:
    scores = page.locator(f"#{prefix}-scores")
    if critique.status == "failed":  # the raw text and a retry button, never a score
        assert "could not be parsed" in scores.inner_text()
        assert page.locator(f"#{prefix}-retry").is_visible()
        assert critique.raw_text[:30].strip() in page.locator(f"#{prefix}-raw textarea").input_value()
    else:
        assert scores.locator(".rr-score").count() == len(critique.parsed["scores"])
        assert " — " in scores.locator(".rr-level").first.inner_text()


def test_create_two_rounds(page_and_service):
    page, service = page_and_service
    page.fill("#create-prompt textarea", "a red fox in the snow")
    set_number(page, "create-rounds", 2)
    set_number(page, "create-steps", 1)
    page.locator("#create-stop-early input").uncheck()
    page.click("#create-run")
    page.wait_for_function("document.querySelector('#create-status').innerText.includes('Done')", timeout=LONG_MS)
    session = rows(service, StudioSession, StudioSession.prompt == "a red fox in the snow")[0]
    stored = sorted(rows(service, Round, Round.session_id == session.id), key=lambda r: r.round_index)
    assert [r.round_index for r in stored] == [0, 1]
    assert page.locator("#create-gallery img").count() >= 2
    last = rows(service, CritiqueRow, CritiqueRow.round_id == stored[1].id)[0]
    check_scores_match(page, "create", last)
    refined = page.locator("#create-refined textarea").input_value()
    assert refined == (stored[1].refined_prompt or stored[1].prompt)
    page.screenshot(path=str(SHOTS / "create.png"), full_page=True)


def test_edit_one_round(page_and_service, tmp_path):
    page, service = page_and_service
    source = tmp_path / "source.png"
    Image.new("RGB", (64, 48), (30, 144, 255)).save(source)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-source input[type=file]").set_input_files(str(source))
    page.fill("#edit-instruction textarea", "make the sky purple")
    set_number(page, "edit-rounds", 1)
    set_number(page, "edit-steps", 1)
    page.click("#edit-run")
    page.wait_for_function("document.querySelector('#edit-status').innerText.includes('Done')", timeout=LONG_MS)
    session = rows(service, StudioSession, StudioSession.prompt == "make the sky purple")[0]
    assert session.task == "edit"
    stored = rows(service, Round, Round.session_id == session.id)
    assert len(stored) == 1 and stored[0].source_image_sha256
    assert page.locator("#edit-slider img").count() >= 1
    check_scores_match(page, "edit", rows(service, CritiqueRow, CritiqueRow.round_id == stored[0].id)[0])
    page.screenshot(path=str(SHOTS / "edit.png"), full_page=True)


def test_annotate_with_the_keyboard_and_pick(page_and_service):
    page, service = page_and_service
    page.get_by_role("tab", name="Annotate").click()
    page.wait_for_function("document.querySelector('#annotate-progress').innerText.includes('Reviewed')",
                           timeout=30_000)
    first = rows(service, CritiqueRow, CritiqueRow.id == min(c.id for c in rows(service, CritiqueRow)))[0]
    page.locator("#annotate-progress").click()
    for key in ("a", "r", "a"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#annotate-progress').innerText.includes('Reviewed 1')",
                           timeout=30_000)
    saved = {a.dimension: a.verdict.value for a in rows(service, Annotation, Annotation.critique_id == first.id)}
    assert saved == {"text_faithfulness": "accept", "physical_quality": "reject", "text_rendering": "accept"}

    page.wait_for_selector("#pair-a img")
    page.screenshot(path=str(SHOTS / "annotate.png"), full_page=True)
    page.locator("#pair-request").click()
    page.keyboard.press("2")
    for _ in range(50):
        judged = rows(service, PairJudgement)
        if judged:
            break
        page.wait_for_timeout(200)
    assert [(j.preference, j.judge_id) for j in judged] == [("B", "local")]
    page.wait_for_function("document.querySelector('#pair-request').innerText.includes('No pairs left')",
                           timeout=30_000)


def test_sessions_search_and_export(page_and_service):
    page, service = page_and_service
    page.get_by_role("tab", name="Sessions").click()
    page.fill("#sessions-search textarea, #sessions-search input", "fox")
    page.click("#sessions-search-btn")
    page.wait_for_function("(t => t.includes('a red fox in the snow') && !t.includes('make the sky purple'))"
                           "(document.querySelector('#sessions-table').innerText)", timeout=30_000)
    page.click("#export-run")
    page.wait_for_function("document.querySelector('#export-note').innerText.includes('Wrote')", timeout=30_000)
    assert "Wrote 1 pairs record" in page.locator("#export-note").inner_text()
    assert "python -m storage.export --format pairs" in page.locator("#export-command").inner_text()
    assert "Preference pairs: 1" in page.locator("#export-counts").inner_text()
    exports = list((service.exports_dir).glob("pairs-*.jsonl"))
    assert len(exports) == 1 and len(exports[0].read_text().splitlines()) == 1
    page.screenshot(path=str(SHOTS / "sessions.png"), full_page=True)
