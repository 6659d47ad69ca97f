"""Issue 17, items 5 and 1 (Edit tab) in a browser, at 1280 px and on a 390 px phone: Stop keeps the
rounds that finished on screen, and an empty edit instruction is answered by a toast, never by a red
"Error" badge. The critic is a slow test double so that Stop lands while a later round is running."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from tests.app.conftest import ScriptedModels, launched, make_service
from tests.app.test_browser_designer import ERROR_BADGES, page, toast  # noqa: F401 (page: the fixture, over this app_url)
from tests.scripted import ScriptedCritic, critique_text, request_of
from ui import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CRITIC_DELAY_S = 2.0


def slow_studio() -> ScriptedModels:
    """Each critique takes CRITIC_DELAY_S; the first round scores best, so it stays the one shown."""
    studio = ScriptedModels()

    def script(conversation):
        task = "edit" if len(conversation.images) > 1 else "t2i"
        first = "refined" not in request_of(conversation)
        return critique_text(task, 3.0 if first else 1.5, refined=f"{request_of(conversation)} refined")

    studio.critic_double = ScriptedCritic(script, delay_s=CRITIC_DELAY_S)
    return studio


@pytest.fixture(scope="module")
def app_url(module_dir):
    service = make_service(module_dir, slow_studio())
    with launched(service) as url:
        yield url, service


def shown_round_one(page) -> tuple[str, str]:
    """The caption and reward of the shown image, checked to be round 1's."""
    caption = page.locator("#create-caption").inner_text()
    assert "Round 1" in caption, caption
    reward = re.search(r"Reward: (\S+)", page.locator("#create-scores").inner_text()).group(1)
    assert reward != "—" and f"reward {reward}" in caption
    assert page.locator("#create-image img").count() == 1
    return caption, reward


def test_stop_keeps_the_finished_round_on_screen(page):
    page.get_by_role("tab", name="Create").click()
    page.fill("#create-prompt textarea", "a lighthouse at night")
    browser.set_number(page, "create-rounds", 3)
    browser.set_number(page, "create-steps", 1)
    page.locator("#create-stop-early input").uncheck()
    page.click("#create-run")
    browser.wait_text(page, "#create-caption", "Round 1", browser.RUN_MS)
    browser.wait_text(page, "#create-scores", "Reward:")
    before = shown_round_one(page)
    page.click("#create-stop")
    browser.wait_text(page, "#create-status", "Stopped", browser.RUN_MS)
    page.wait_for_timeout(CRITIC_DELAY_S * 1000)  # nothing that comes after Stop may clear the panel
    caption, reward = shown_round_one(page)
    # The same round and reward stay on screen; once the run ends the caption may add "★ best so far".
    assert reward == before[1] and caption.startswith(before[0].split(" · ★")[0])
    assert page.locator("#create-scores .rr-score").count() == 3
    assert 1 <= page.locator("#create-gallery img").count() < 3  # the third round never ran
    assert page.locator(ERROR_BADGES.format(tab="create")).count() == 0


def test_an_empty_edit_instruction_is_a_toast_not_an_error_badge(page, tmp_path):
    source = tmp_path / "mug.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(source)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-upload input[type=file]").set_input_files(str(source))
    page.wait_for_selector("#edit-source img")
    page.fill("#edit-instruction textarea", "   ")
    page.click("#edit-run")
    toast(page, "request is empty")
    page.wait_for_timeout(500)
    assert page.locator(ERROR_BADGES.format(tab="edit")).count() == 0
    assert page.locator("#edit-gallery img").count() == 0  # no run started
    page.get_by_role("tab", name="Create").click()
