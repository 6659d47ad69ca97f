"""What only a browser shows, with the tiny preset: create two rounds, edit, annotate with the keyboard,
pick A/B and export, each step asserted on the page and in the database. The steps are the
screenshots command's tour (ui.browser, ui.screenshots); the test photographs each view into a
temporary folder only, never into the repository (`python -m ui.screenshots` refreshes the README's)."""

from __future__ import annotations

import pytest
from PIL import Image

from storage.models import Annotation, CritiqueRow, PairJudgement, CandidateRow, SessionRow
from tests.app.conftest import launched, make_service, rows, tiny_studio, wait_for_rows
from ui import browser
from ui.screenshots import shoot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def page_and_service(module_dir):
    from playwright.sync_api import sync_playwright

    service = make_service(module_dir, tiny_studio())
    with launched(service) as url, sync_playwright() as playwright:
        chromium = browser.launch_chromium(playwright)
        page = chromium.new_page(viewport=browser.VIEWPORT)
        page.goto(url)
        page.wait_for_selector("#create-prompt textarea")
        yield page, service
        chromium.close()


def check_scores_match(page, prefix: str, critique: CritiqueRow) -> None:
    scores = page.locator(f"#{prefix}-scores")
    if critique.status == "failed":  # the raw text and a retry button, never a score
        assert "could not be parsed" in scores.inner_text()
        assert page.locator(f"#{prefix}-retry").is_visible()
        assert critique.raw_text[:30].strip() in page.locator(f"#{prefix}-raw textarea").input_value()
    else:
        assert scores.locator(".rr-score").count() == len(critique.parsed["scores"])
        assert " — " in scores.locator(".rr-level").first.inner_text()


def test_create_two_rounds(page_and_service, shots):
    page, service = page_and_service
    browser.run_create(page, "a red fox in the snow", rounds=2)
    session = rows(service, SessionRow, SessionRow.request == "a red fox in the snow")[0]
    stored = sorted(rows(service, CandidateRow, CandidateRow.session_id == session.id), key=lambda r: r.round_index)
    assert [r.round_index for r in stored] == [0, 1]
    assert page.locator("#create-gallery img").count() >= 2
    last = rows(service, CritiqueRow, CritiqueRow.candidate_id == stored[1].id)[0]
    check_scores_match(page, "create", last)
    refined = page.locator("#create-refined textarea").input_value()
    assert refined == (stored[1].refined_request or stored[1].request)
    assert shoot(page, shots, "create").stat().st_size > 0


def test_edit_one_round(page_and_service, tmp_path, shots):
    page, service = page_and_service
    source = tmp_path / "source.png"
    Image.new("RGB", (64, 48), (30, 144, 255)).save(source)
    browser.run_edit(page, source, "make the sky purple")
    session = rows(service, SessionRow, SessionRow.request == "make the sky purple")[0]
    assert session.task == "edit"
    stored = rows(service, CandidateRow, CandidateRow.session_id == session.id)
    assert len(stored) == 1 and stored[0].source_image_sha256
    assert page.locator("#edit-slider img").count() >= 1
    check_scores_match(page, "edit", rows(service, CritiqueRow, CritiqueRow.candidate_id == stored[0].id)[0])
    assert shoot(page, shots, "edit").stat().st_size > 0


def test_annotate_with_the_keyboard_and_pick(page_and_service, shots):
    page, service = page_and_service
    browser.open_annotate(page)
    first = rows(service, CritiqueRow, CritiqueRow.id == min(c.id for c in rows(service, CritiqueRow)))[0]
    browser.review_with_keys(page, ["a", "r", "a"])
    browser.wait_text(page, "#annotate-progress", "Reviewed 1")
    saved = {a.dimension: a.verdict.value for a in rows(service, Annotation, Annotation.critique_id == first.id)}
    assert saved == {"text_faithfulness": "accept", "physical_quality": "reject", "text_rendering": "accept"}

    assert shoot(page, shots, "review").stat().st_size > 0
    browser.open_compare(page)
    page.wait_for_selector("#pair-left img")
    assert shoot(page, shots, "compare").stat().st_size > 0
    page.locator("#pair-request").click()
    page.keyboard.press("2")
    judged = wait_for_rows(page, service, PairJudgement, 0)
    assert [(j.preference, j.judge_id) for j in judged] == [("B", "local")]
    browser.wait_text(page, "#pair-request", "No pairs left")


def test_sessions_search_and_export(page_and_service, shots):
    page, service = page_and_service
    browser.search_and_export(page, "fox")
    table = page.locator("#sessions-table").inner_text()
    assert "a red fox in the snow" in table and "make the sky purple" not in table
    assert "Wrote 1 pairs record" in page.locator("#export-note").inner_text()
    assert "python -m storage.export --format pairs" in page.locator("#export-command").inner_text()
    assert "Preference pairs: 1" in page.locator("#export-counts").inner_text()
    exports = list((service.exports_dir).glob("pairs-*.jsonl"))
    assert len(exports) == 1 and len(exports[0].read_text().splitlines()) == 1
    assert shoot(page, shots, "sessions").stat().st_size > 0
