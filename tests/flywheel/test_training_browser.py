"""The Training tab in the browser: an admin sees what is ready, the commands for this database, and a
run read from its log."""

from __future__ import annotations

import json

import pytest

from tests.app.conftest import ScriptedModels, launched, make_service
from ui import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_admin_sees_counts_commands_and_runs(tmp_path, monkeypatch):
    module_dir = tmp_path
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path))
    from playwright.sync_api import sync_playwright

    service = make_service(module_dir, ScriptedModels())
    list(service.run_loop(None, "a red kite", {"rounds": 1, "candidates": 2, "stop_threshold": None}))
    run = module_dir / "runs" / "rl-t2i"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3, "reward/mean": 0.25}) + "\n")
    with launched(service) as url, sync_playwright() as playwright:
        chromium = browser.launch_chromium(playwright)
        page = chromium.new_page(viewport=browser.VIEWPORT)
        page.goto(url)
        page.get_by_role("tab", name="Training").click()
        page.wait_for_function("document.querySelector('#training-counts').innerText.includes('Ready')")
        counts = page.locator("#training-counts").inner_text()
        assert "1 text-to-image" in counts and "0 judged A/B pairs" in counts
        commands = page.locator("#training-commands").inner_text()
        assert "--from-db" in commands and "python -m training.rl" in commands
        page.wait_for_function("document.querySelector('#training-runs').innerText.includes('rl-t2i')")
        assert "reward/mean 0.25" in page.locator("#training-runs").inner_text()
        chromium.close()
