"""`python -m studio.refine`'s progress log: one line per status a run passes through, not one per
streamed critique token (a three-round run used to log "Round N: critiquing…" dozens of times)."""

from __future__ import annotations

import logging

from rr_core.refine import BatchItem
from studio.refine import run_item

SETTINGS = {"rounds": 2, "candidates": 1, "stop_threshold": None, "steps": 2, "max_retries": 0}


def test_each_status_is_logged_once_per_change(services, caplog):
    with caplog.at_level(logging.INFO, logger="studio.refine"):
        result = run_item(services, None, BatchItem("boat", "a small boat", None), SETTINGS, quiet=False)
    assert len(result["reward_history"]) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "studio.refine"]
    assert any("critiqu" in line.lower() for line in lines)  # the streamed stage is still reported
    repeats = [a for a, b in zip(lines, lines[1:]) if a == b]
    assert not repeats, f"status lines repeated: {repeats[:3]} ({len(lines)} lines in all)"


def test_quiet_logs_nothing(services, caplog):
    with caplog.at_level(logging.INFO, logger="studio.refine"):
        run_item(services, None, BatchItem("boat", "a small boat", None), SETTINGS, quiet=True)
    assert not [r for r in caplog.records if r.name == "studio.refine"]
