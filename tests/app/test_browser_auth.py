"""Annotation in a browser with sign-in on: an annotator reviews an edit critique (four dimensions)
and a text-to-image critique with the keyboard, and the rows name who, which critique and which
verdicts. Digits typed into a verdict, score or comment field never record an A/B pick.

The sessions are made by a designer through the service over the scripted test doubles, so every
critique parses and the test is about the page, not the models."""

from __future__ import annotations

import pytest
from PIL import Image

from storage.models import Annotation, CritiqueRow, PairJudgement, CandidateRow, SessionRow
from tests.app.conftest import annotator_in_browser, rows, wait_for_rows
from ui import browser
from ui.browser import wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def designer_sessions(service) -> None:
    source = Image.new("RGB", (40, 32), (30, 144, 255))
    list(service.run_loop("alice", "make the sky purple", {"rounds": 1, "steps": 1}, source_image=source))
    never_stop = {"rounds": 2, "steps": 1, "stop_threshold": None}
    list(service.run_loop("alice", "a red fox in the snow", never_stop))


@pytest.fixture(scope="module")
def annotator_page(module_dir):
    with annotator_in_browser(module_dir, designer_sessions) as (page, service):
        wait_text(page, "#annotate-progress", "Reviewed 0")
        yield page, service


def critique_of(service, prompt: str, round_index: int = 0) -> CritiqueRow:
    session = rows(service, SessionRow, SessionRow.request == prompt)[0]
    round_ = rows(service, CandidateRow, CandidateRow.session_id == session.id, CandidateRow.round_index == round_index)[0]
    return rows(service, CritiqueRow, CritiqueRow.candidate_id == round_.id)[0]


def saved(service, critique: CritiqueRow) -> dict[str, tuple]:
    return {a.dimension: (a.annotator_id, a.verdict.value, a.corrected_score, a.comment)
            for a in rows(service, Annotation, Annotation.critique_id == critique.id)}


def wait_reviewed(page, count: int) -> None:
    wait_text(page, "#annotate-progress", f"Reviewed {count}")


def no_error_badges(page) -> None:
    assert "Error" not in page.locator("#annotate-panel").inner_text()


def test_review_an_edit_critique_with_the_keyboard_leaving_fields_with_esc(annotator_page):
    page, service = annotator_page
    critique = critique_of(service, "make the sky purple")
    assert page.locator(".rr-dim:visible").count() == 4
    page.locator("#annotate-progress").click()
    for key in ("a", "c"):  # accept the first; correct the second: its score box takes focus
        page.keyboard.press(key)
    page.keyboard.type("2.5")
    page.keyboard.press("Escape")  # Esc leaves the field, so the keys act again
    assert page.evaluate("document.activeElement.type") != "number"
    for key in ("j", "m"):  # down to the third, into its comment
        page.keyboard.press(key)
    page.keyboard.type("seam")
    page.keyboard.press("Escape")
    for key in ("r", "a", "Enter"):  # reject the third, accept the fourth, submit
        page.keyboard.press(key)
    wait_reviewed(page, 1)
    assert saved(service, critique) == {
        "text_faithfulness": ("carol", "accept", None, ""),
        "image_faithfulness": ("carol", "correct", 2.5, ""),
        "physical_quality": ("carol", "reject", None, "seam"), "text_rendering": ("carol", "accept", None, "")}
    assert page.locator(".rr-dim:visible").count() == 3
    no_error_badges(page)


def test_review_a_t2i_critique_and_submit_from_the_comment_box(annotator_page):
    page, service = annotator_page
    critique = critique_of(service, "a red fox in the snow", 0)
    page.locator("#annotate-progress").click()
    page.keyboard.press("a")
    page.keyboard.press("r")
    comment = page.locator("#comment-0 textarea, #comment-0 input").first
    comment.click()
    page.keyboard.type("colour is off 2 shades")  # letters and digits stay in the box
    assert comment.input_value() == "colour is off 2 shades"
    page.keyboard.press("Enter")
    wait_reviewed(page, 2)
    assert saved(service, critique) == {
        "text_faithfulness": ("carol", "accept", None, "colour is off 2 shades"),
        "physical_quality": ("carol", "reject", None, "")}
    assert rows(service, PairJudgement) == []
    no_error_badges(page)


def test_digits_in_a_verdict_score_or_comment_pick_nothing(annotator_page):
    page, service = annotator_page
    critique = critique_of(service, "a red fox in the snow", 1)
    page.locator("#verdict-0 input[value=correct]").click()
    assert page.evaluate("document.activeElement.type") == "radio"
    for key in ("1", "2", "3"):
        page.keyboard.press(key)
    score = page.locator("#score-0 input[type=number]")
    score.click()
    score.fill("")
    page.keyboard.type("3")
    comment = page.locator("#comment-0 textarea, #comment-0 input").first
    comment.click()
    page.keyboard.type("2")
    page.wait_for_timeout(500)
    assert rows(service, PairJudgement) == []
    score.click()
    page.keyboard.press("Enter")  # submits from the number box too
    wait_text(page, "#annotate-progress", "Nothing left to review")  # that was the last critique
    assert saved(service, critique) == {"text_faithfulness": ("carol", "correct", 3.0, "2")}
    assert rows(service, PairJudgement) == []

    browser.open_compare(page)
    page.wait_for_selector("#pair-left img", timeout=browser.STEP_MS)
    page.locator("#pair-request").click()  # outside any field, in the Compare view, the digits pick
    page.keyboard.press("2")
    judged = wait_for_rows(page, service, PairJudgement, 0)
    assert [(j.preference, j.judge_id) for j in judged] == [("B", "carol")]
    no_error_badges(page)
