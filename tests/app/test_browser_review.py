"""The whole annotator flow in a browser under sign-in, keyboard only: an edit critique and three
text-to-image critiques in the Review view (accept, reject, correct with a typed score and with a
digit key, skip, back, undo), then three A/B picks in the Compare view; afterwards the database is
checked row by row (who, what, which side was shown). No mouse: every step is a key press (the
Compare tab is reached by focusing it and pressing Space, as Tab would).

The sessions are made by a designer through the service over the scripted test doubles (every
critique scores 2.5), so the test is about the page and the rows, not the models."""

from __future__ import annotations

import pytest
from PIL import Image

from storage.models import Annotation, CritiqueRow, PairJudgement, ReviewLease, CandidateRow, SessionRow
from studio.review import left_first
from tests.app.conftest import annotator_in_browser, rows, wait_for_rows
from ui import browser
from ui.browser import wait_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def designer_sessions(service) -> None:
    list(service.run_loop("alice", "make the sky purple", {"rounds": 1, "steps": 1},
                          source_image=Image.new("RGB", (40, 32), (30, 144, 255))))
    list(service.run_loop("alice", "a red fox in the snow", {"rounds": 3, "steps": 1, "stop_threshold": None}))


@pytest.fixture(scope="module")
def flow(module_dir):
    with annotator_in_browser(module_dir, designer_sessions) as (page, service):
        wait_text(page, "#annotate-progress", "Reviewed 0 by you · 4 left for you")
        yield page, service


def critiques(service) -> dict[str, int]:
    """"edit" and "round N" -> critique id."""
    found = {}
    for session in rows(service, SessionRow):
        for round_ in rows(service, CandidateRow, CandidateRow.session_id == session.id):
            critique = rows(service, CritiqueRow, CritiqueRow.candidate_id == round_.id)[0]
            found["edit" if session.task == "edit" else f"round {round_.round_index + 1}"] = critique.id
    return found


def saved(service) -> list[tuple]:
    return [(a.annotator_id, a.critique_id, a.dimension, a.verdict.value, a.corrected_score)
            for a in rows(service, Annotation)]


def press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def showing(page, label: str) -> None:
    wait_text(page, "#annotate-request", label)


def test_the_whole_annotator_flow_with_the_keyboard(flow):
    page, service = flow
    ids = critiques(service)

    # 1. The edit critique comes first (all have no judgement; it is the oldest): four dimensions,
    #    corrected scores empty with the critic's score as placeholder.
    showing(page, "(edit, round 1 · #1)")
    assert page.locator(".rr-dim:visible").count() == 4
    score = page.locator("#score-2 input[type=number]")
    assert score.input_value() == "" and score.get_attribute("placeholder") == "critic: 2.5"
    press(page, "?")
    assert page.locator("#rr-help").is_visible()
    assert "Review critiques" in page.locator("#rr-help").inner_text()
    press(page, "Escape")
    assert not page.locator("#rr-help").is_visible()
    press(page, "a", "r", "c")  # accept, reject, then correct the third: the score box takes focus
    assert page.evaluate("document.activeElement.type") == "number"
    page.keyboard.type("2.75")
    press(page, "Enter")
    wait_text(page, "#annotate-progress", "Reviewed 1 by you")
    assert "Saved 3 verdict(s)." in page.locator("#annotate-note").inner_text()
    assert saved(service) == [("carol", ids["edit"], "text_faithfulness", "accept", None),
                              ("carol", ids["edit"], "image_faithfulness", "reject", None),
                              ("carol", ids["edit"], "physical_quality", "correct", 2.75)]

    # 2. Round 1: skip it; round 2 shows. Back brings round 1 again; judge it with a digit key.
    showing(page, "(t2i, round 1 · #1)")
    press(page, "s")
    showing(page, "(t2i, round 2 · #1)")
    press(page, "b")
    showing(page, "(t2i, round 1 · #1)")
    press(page, "a", "3", "+")  # accept the first, then 3 and a step up: 3.25 on the second
    assert page.locator("#score-1 input[type=number]").input_value() == "3.25"
    press(page, "Enter")
    wait_text(page, "#annotate-progress", "Reviewed 2 by you")

    # 3. Round 2: reject, submit, undo (it comes back with nothing saved), then accept instead.
    showing(page, "(t2i, round 2 · #1)")
    press(page, "r", "Enter")
    wait_text(page, "#annotate-progress", "Reviewed 3 by you")
    showing(page, "(t2i, round 3 · #1)")
    press(page, "u")
    wait_text(page, "#annotate-note", "Undone")
    showing(page, "(t2i, round 2 · #1)")
    assert ids["round 2"] not in {row[1] for row in saved(service)}
    press(page, "j", "a", "Enter")  # down to the second dimension, accept it
    wait_text(page, "#annotate-progress", "Reviewed 3 by you · 1 left for you")
    assert saved(service)[3:] == [("carol", ids["round 1"], "text_faithfulness", "accept", None),
                                  ("carol", ids["round 1"], "physical_quality", "correct", 3.25),
                                  ("carol", ids["round 2"], "physical_quality", "accept", None)]
    assert len(saved(service)) == 6

    # 4. Compare A/B: three pairs of the fox session, picked left, right, tie.
    page.get_by_role("tab", name="Compare A/B").focus()
    press(page, "Space")
    wait_text(page, "#pair-progress", "Compared 0 by you · 3 left for you")
    shown = []
    for done, key in enumerate(("1", "2", "3")):
        wait_text(page, "#pair-progress", f"Compared {done} by you")  # the next pair has arrived
        page.wait_for_selector("#pair-left img", timeout=browser.STEP_MS)
        text = page.locator("#pair-request").inner_text()
        assert "Left (round " in text and "Right (round " in text
        labels = (page.locator("#pair-left").inner_text(), page.locator("#pair-right").inner_text())
        assert "Left: round " in labels[0] and "Right: round " in labels[1]
        shown.append(labels)
        count = len(rows(service, PairJudgement))
        press(page, key)
        wait_for_rows(page, service, PairJudgement, count)
    wait_text(page, "#pair-request", "No pairs left")
    wait_text(page, "#pair-progress", "Compared 3 by you · 0 left for you")

    by_index = {r.id: f"round {r.round_index + 1} · #1" for r in rows(service, CandidateRow)}
    judged = rows(service, PairJudgement)
    assert [(j.judge_id, j.preference) for j in judged] == [("carol", "A"), ("carol", "B"), ("carol", "tie")]
    for j, (left, right) in zip(judged, shown):
        assert j.left_candidate_id == j.candidate_a_id  # the left image is stored as the side shown
        assert f"Left: {by_index[j.candidate_a_id]}" in left and f"Right: {by_index[j.candidate_b_id]}" in right
        low, high = sorted((j.candidate_a_id, j.candidate_b_id))
        assert (j.left_candidate_id == low) is left_first(low, high)
    left_share = sum(1 for j in judged if j.preference == "A") / 2
    assert f"your left picks: {left_share:.0%}" in page.locator("#pair-progress").inner_text()
    # Every pair handed out was judged; round 3, still open in the Review view, stays leased to carol.
    assert [(lease.item, lease.holder_id) for lease in rows(service, ReviewLease)] == [
        (f"critique:{ids['round 3']}", "carol")]

    # 5. The agreement panel shows each reviewer's share of left picks (no disagreement queue: not an admin).
    page.get_by_text("Agreement between reviewers").click()
    page.locator("#agreement-refresh").click()
    wait_text(page, "#agreement-text", f"carol {left_share:.0%} of 2")
    assert "Disagreements" not in page.locator("#agreement-text").inner_text()


def test_a_designer_sees_neither_review_view_nor_the_export_panel(flow):
    page, _ = flow
    designer = page.context.browser.new_page(viewport=browser.VIEWPORT)
    try:
        url = page.url.split("?")[0]
        browser.sign_in(designer, url, "alice", "pa")
        assert designer.get_by_role("tab", name="Create").is_visible()
        assert designer.get_by_role("tab", name="Annotate").count() == 0 or \
            not designer.get_by_role("tab", name="Annotate").is_visible()
        designer.get_by_role("tab", name="Sessions").click()
        designer.wait_for_selector("#sessions-table", timeout=browser.STEP_MS)
        designer.wait_for_timeout(1000)  # the tab's events have run
        assert not designer.locator("#export-panel").is_visible()
        assert not designer.locator("#export-run").is_visible()
        assert designer.locator(".toast-body.error").count() == 0  # hidden, not a red error
    finally:
        designer.close()
