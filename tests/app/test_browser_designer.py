"""The designer's workflow in a browser (issue 17), at a desktop width and on a 390 px phone, over the
test doubles (the wiring and the page are under test here, not the models)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from storage.models import SessionRow
from tests.app.conftest import launched, make_service
from tests.app.test_designer import varied_studio
from ui import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ERROR_BADGES = "#tab-{tab} [data-testid=status-tracker] .error"


@pytest.fixture(scope="module")
def app_url(module_dir):
    service = make_service(module_dir, varied_studio())
    with launched(service) as url:
        yield url, service


@pytest.fixture(scope="module", params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def page(request, app_url):
    """The app at `app_url` (each test module may give its own) in Chromium, desktop then phone."""
    from playwright.sync_api import sync_playwright

    url, service = app_url
    with sync_playwright() as playwright:
        chromium = browser.launch_chromium(playwright)
        page = chromium.new_page(viewport=request.param)
        page.goto(url)
        page.wait_for_selector("#create-prompt textarea")
        page.service = service
        page.url_root = url
        yield page
        chromium.close()


def session_count(service) -> int:
    with service.sessions() as db:
        return db.scalar(select(func.count()).select_from(SessionRow))


def toast(page, text: str) -> None:
    browser.wait_text(page, ".toast-wrap, [data-testid=toast-body]", text)


def test_enter_generates_and_shift_enter_adds_a_line(page):
    before = session_count(page.service)
    browser.set_number(page, "create-rounds", 2)
    browser.set_number(page, "create-steps", 1)
    page.locator("#create-stop-early input").uncheck()
    box = page.locator("#create-prompt textarea")
    box.fill("a red fox")
    box.press("Shift+Enter")
    box.type("in the snow")
    assert box.input_value() == "a red fox\nin the snow"
    assert session_count(page.service) == before
    box.press("Enter")
    browser.wait_text(page, "#create-status", "Done", browser.RUN_MS)
    assert session_count(page.service) == before + 1
    assert page.locator("#create-gallery img").count() >= 2


def test_bad_input_speaks_only_through_the_toast(page):
    images = page.locator("#create-gallery img").count()
    scores = page.locator("#create-scores").inner_text()
    page.fill("#create-prompt textarea", "   ")
    page.click("#create-run")
    toast(page, "request is empty")
    page.wait_for_timeout(500)
    assert page.locator(ERROR_BADGES.format(tab="create")).count() == 0
    assert page.locator("#create-gallery img").count() == images
    assert page.locator("#create-scores").inner_text() == scores


def test_the_panel_follows_the_clicked_thumbnail(page):
    def shown() -> tuple[str, str]:
        caption = page.locator("#create-caption").inner_text()
        reward = re.search(r"Reward: (\S+)", page.locator("#create-scores").inner_text()).group(1)
        return caption, reward

    thumbs = page.locator("#create-gallery .thumbnail-item")
    rewards = []
    for index, label in ((1, "Round 2"), (0, "Round 1")):
        thumbs.nth(index).click()
        browser.wait_text(page, "#create-caption", label)
        caption, reward = shown()
        assert f"reward {reward}" in caption  # the caption and the scores describe the same image
        rewards.append(reward)
    assert rewards[0] != rewards[1]  # the scripted critic scores the two rounds differently


def test_the_score_history_names_its_dimensions(page):
    plot = page.locator("#create-plot")
    for name in ("Text Faithfulness", "Physical and Visual Quality", "Text Rendering"):
        assert name in plot.inner_text()
    assert page.locator("#create-plot svg circle").count() == 8
    assert page.locator("#create-plot .rr-xtick").all_text_contents() == ["1", "2"]


def test_the_plan_says_the_run_may_stop_early(page):
    page.locator("#create-stop-early input").check()
    browser.wait_text(page, "#create-plan", "stops early")
    page.locator("#create-stop-early input").uncheck()
    browser.wait_text(page, "#create-plan", "stopping early is off")


def test_a_renamed_non_image_is_answered_on_upload(page, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"%PDF-1.4 not a picture")
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-upload input[type=file]").set_input_files(str(fake))
    toast(page, "is not an image")
    assert page.locator(ERROR_BADGES.format(tab="edit")).count() == 0
    page.get_by_role("tab", name="Create").click()


def test_the_header_is_one_line_and_every_tab_is_reachable(page):
    header = page.locator("#rr-header").bounding_box()
    one_line = page.viewport_size["width"] >= 1000
    assert header["height"] <= (50 if one_line else 90), header  # desktop: one line; phone: at most three
    assert page.locator("#rr-health").bounding_box()["width"] > 150  # the models' line is readable
    assert "/" not in page.locator("#rr-health").inner_text().replace("→", "")
    tabs = (("Edit", "#tab-edit"), ("Annotate", "#tab-annotate"), ("Sessions", "#tab-sessions"),
            ("Training", "#tab-training"), ("Create", "#tab-create"))  # the local user is an admin: all five
    for name, panel in tabs:
        page.get_by_role("tab", name=name).click()
        page.wait_for_selector(panel, state="visible")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"] + 1
    for selector in ("#create-image", "#create-scores", "#create-edit-this", "#create-plot", "#create-refined"):
        box = page.locator(selector).bounding_box()
        assert box["x"] + box["width"] <= page.viewport_size["width"] + 1, selector  # nothing cut off


def test_sessions_show_images_and_delete_asks_first(page):
    assert session_count(page.service) > 0
    page.get_by_role("tab", name="Sessions").click()
    page.fill("#sessions-search textarea, #sessions-search input", "fox")
    page.click("#sessions-search-btn")
    page.wait_for_selector("#sessions-gallery img")
    browser.wait_text(page, "#sessions-table", "best reward")
    headers = [t.strip().lower() for t in page.locator("#sessions-table th").all_inner_texts() if t.strip()]
    assert headers[:2] == ["request", "best reward"] and headers[-1] == "id"  # the id is last, not first
    page.locator("#sessions-gallery .thumbnail-item").first.click()
    browser.wait_text(page, "#sessions-selected", "Selected:")
    before = session_count(page.service)
    page.click("#sessions-delete")
    browser.wait_text(page, "#sessions-confirm-text", "kept for training")
    page.click("#sessions-cancel-delete")
    page.wait_for_selector("#sessions-confirm", state="hidden")
    assert session_count(page.service) == before
    page.get_by_role("tab", name="Create").click()


def test_the_sessions_table_shows_reward_rounds_and_date_without_scrolling(page):
    request = "a very long request about a harbour at dusk with fishing boats, gulls and warm lamplight"
    if not page.service.list_sessions(None, "harbour at dusk"):
        list(page.service.run_loop(None, request, {"rounds": 1, "steps": 1}))
    page.get_by_role("tab", name="Sessions").click()
    page.fill("#sessions-search textarea, #sessions-search input", "harbour")
    page.click("#sessions-search-btn")
    browser.wait_text(page, "#sessions-table", "harbour at dusk")
    table = page.locator("#sessions-table").bounding_box()
    for name in ("request", "best reward", "rounds", "date"):  # what a designer scans a list by
        header = page.locator("#sessions-table th").filter(has_text=name).first.bounding_box()
        assert header["x"] >= table["x"] - 1 and header["x"] + header["width"] <= table["x"] + table["width"] + 1, \
            (name, header, table)
    page.get_by_role("tab", name="Create").click()


def test_examples_fill_the_forms(page):
    page.get_by_role("tab", name="Create").click()
    page.locator("#create-examples").get_by_text("a watercolour of a lighthouse in a storm").click()
    page.wait_for_function("() => document.querySelector('#create-prompt textarea').value.includes('lighthouse')")
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-examples").get_by_text("make the mug blue").click()
    page.wait_for_selector("#edit-source img")
    page.wait_for_function("() => document.querySelector('#edit-instruction textarea').value === 'make the mug blue'")
    page.get_by_role("tab", name="Create").click()


def test_destructive_buttons_look_destructive(page):
    page.get_by_role("tab", name="Sessions").click()
    color = page.locator("#sessions-delete").evaluate("(el) => getComputedStyle(el).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", color)[:3])
    assert red > 180 and green < 90 and blue < 90, color
    page.get_by_role("tab", name="Create").click()


def test_reopen_restores_the_prompt_and_the_settings(page):
    page.fill("#create-prompt textarea", "something else entirely")
    browser.set_number(page, "create-rounds", 5)
    page.get_by_role("tab", name="Sessions").click()
    page.fill("#sessions-search textarea, #sessions-search input", "snow")
    page.click("#sessions-search-btn")
    page.wait_for_selector("#sessions-gallery img")
    page.locator("#sessions-gallery .thumbnail-item").first.click()
    browser.wait_text(page, "#sessions-selected", "Selected:")
    page.click("#sessions-open")
    page.wait_for_function("() => document.querySelector('#create-prompt textarea').value === 'a red fox\\nin the snow'")
    assert page.locator("#create-rounds input[type=number]").input_value() == "2"
    assert not page.locator("#create-stop-early input").is_checked()
    browser.wait_text(page, "#create-plan", "stopping early is off")
