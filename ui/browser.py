"""Drive the app in Debian's chromium through Playwright, as a user would: one place for the launch
settings and the steps a browser tour takes, shared by the browser tests (which assert on the page
and the database after each step) and the screenshots command (which photographs the result)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 1100}
RUN_MS = 180_000
STEP_MS = 30_000


def launch_chromium(playwright: Any) -> Any:
    """A headless chromium with the settings that work in containers (no sandbox, no GPU, no network)."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        raise RuntimeError(f"chromium is missing at {CHROMIUM}: apt-get install -y chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_text(page: Any, selector: str, text: str, timeout_ms: int = STEP_MS) -> None:
    """Wait until the element's visible text contains `text` (an element not there yet counts as empty)."""
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)",
                           arg=[selector, text], timeout=timeout_ms)


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    """Log in through Gradio's /login form endpoint (the cookie lands in the page's context), then
    open the app."""
    response = page.request.post(f"{url}login", form={"username": username, "password": password})
    if not response.ok:
        raise RuntimeError(f"sign-in as {username!r} failed: {response.status} {response.text()}")
    page.goto(url)
    wait_text(page, "#rr-user", f"Signed in as {username}")


def set_number(page: Any, elem_id: str, value: float) -> None:
    """Type into a number box or a slider's number field, then leave it so the value is taken."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def run_create(page: Any, prompt: str, rounds: int, steps: int = 1) -> None:
    """Create tab: a prompt, `rounds` rounds without stopping early; returns when the run is done."""
    page.get_by_role("tab", name="Create").click()
    page.fill("#create-prompt textarea", prompt)
    set_number(page, "create-rounds", rounds)
    set_number(page, "create-steps", steps)
    page.locator("#create-stop-early input").uncheck()
    page.click("#create-run")
    wait_text(page, "#create-status", "Done", RUN_MS)


def run_edit(page: Any, source: Path, instruction: str, rounds: int = 1, steps: int = 1) -> None:
    """Edit tab: upload `source`, give an instruction, run; returns when the run is done."""
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-source input[type=file]").set_input_files(str(source))
    page.fill("#edit-instruction textarea", instruction)
    set_number(page, "edit-rounds", rounds)
    set_number(page, "edit-steps", steps)
    page.click("#edit-run")
    wait_text(page, "#edit-status", "Done", RUN_MS)


def open_annotate(page: Any) -> None:
    """Annotate tab, on its Review critiques view, with the first critique loaded."""
    page.get_by_role("tab", name="Annotate").click()
    wait_text(page, "#annotate-progress", "Reviewed")


def open_compare(page: Any) -> None:
    """The Annotate tab's Compare A/B view, with the first pair loaded (or none left)."""
    page.get_by_role("tab", name="Compare A/B").click()
    wait_text(page, "#pair-progress", "Compared")


def review_with_keys(page: Any, keys: list[str]) -> None:
    """Press review keys (a/r, j/k, digits...) outside any field, then Enter to submit and load the
    next critique."""
    page.locator("#annotate-progress").click()
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.press("Enter")


def search_and_export(page: Any, search: str) -> None:
    """Sessions tab: search by prompt text, then export the format the panel shows (pairs by default)."""
    page.get_by_role("tab", name="Sessions").click()
    page.fill("#sessions-search textarea, #sessions-search input", search)
    page.click("#sessions-search-btn")
    page.wait_for_function(
        "(s) => { const rows = [...document.querySelectorAll('#sessions-table [role=row]')]"
        ".filter((r) => !r.closest('thead'));"
        " return rows.length > 0"
        " && rows.every((r) => r.innerText.toLowerCase().includes(s.toLowerCase())); }",
        arg=search, timeout=STEP_MS)
    page.click("#export-run")
    wait_text(page, "#export-note", "Wrote")
