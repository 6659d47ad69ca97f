"""Reliability probes with their figures: cross-user attempts over the named API endpoints, the file
routes and Gradio's own routes; bad inputs over the service's entry points; a SIGKILL mid-round.
Prints attempts and how many held; the same probes are asserted by tests/reliability. Not a test.

    python -m bench.reliability
"""

from __future__ import annotations

import math
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rr_core.errors import RRError
from studio.users import AuthSettings
from tests.app.conftest import ScriptedModels, launched, make_service
from tests.reliability.probes import (
    AUTH,
    cross_user_api_probes,
    export_link,
    file_route_probes,
    framework_probes,
)
from tests.reliability.test_bad_inputs import BAD_IDS, BAD_RUN_SETTINGS
from tests.reliability.test_kill_mid_round import check_after_kill, kill_mid_round
from tests.studio.conftest import make_services

BAD_VERDICTS = ["accept", ["accept"], {"text_faithfulness": "accept"}, {"text_faithfulness": {"verdict": 1}},
                {"text_faithfulness": {"verdict": "correct", "score": math.inf}}]


def bad_input_probes(root: Path) -> list[tuple[str, bool]]:
    """Each bad value through the service: held when refused with the project's own error (a
    specific message), not a Python TypeError/OverflowError."""
    services = make_services(root)
    calls = [(f"run_loop {s}", lambda s=s: list(services.run_loop(None, "a fox", {"rounds": 1, **s})))
             for s, _ in BAD_RUN_SETTINGS]
    calls += [(f"{name} id={v!r}", lambda f=f, v=v: f(v)) for v, _ in BAD_IDS for name, f in (
        ("keep", lambda v: services.keep(None, v)), ("retry", lambda v: services.retry_critique(None, v)),
        ("annotate", lambda v: services.annotate(None, v, {"text_faithfulness": {"verdict": "accept"}})),
        ("pick_pair", lambda v: services.pick_pair(None, v, 1, "A")),
        ("review_critique", lambda v: services.critique_for_review(None, v)),
        ("skip_critique", lambda v: services.skip_critique(None, v)))]
    calls += [(f"annotate verdicts={v!r}", lambda v=v: services.annotate(None, 1, v)) for v in BAD_VERDICTS]
    calls += [("export parquet='yes'", lambda: services.export(None, "pairs", "yes"))]
    calls += [("run_loop request with a NUL", lambda: list(services.run_loop(None, "a fox\x00", {"rounds": 1})))]
    results = []
    for what, call in calls:
        try:
            call()
            held = False
        except RRError:
            held = True
        except Exception:  # noqa: BLE001 (a generic Python error is a probe that did not hold)
            held = False
        results.append((what, held))
    services.engine.dispose()
    return results


def main() -> None:
    started = time.monotonic()
    figures: dict[str, list[tuple[str, bool]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "app").mkdir()
        service = make_service(root / "app", ScriptedModels(), auth=AuthSettings.parse(AUTH))
        with launched(service) as url:
            figures["cross-user, named API endpoints"] = cross_user_api_probes(url)
            figures["cross-user and anonymous, export file routes"] = file_route_probes(url, export_link(url))
            figures["Gradio routes (runs, cancel, queue, heartbeat)"] = framework_probes(url)
        (root / "bad").mkdir()
        figures["bad inputs, service entry points"] = bad_input_probes(root / "bad")
        (root / "kill").mkdir()
        kill = check_after_kill(root / "kill", kill_mid_round(root / "kill", after_rounds=3))
    print(f"# reliability probes, {platform.machine()} {platform.system()}, python {platform.python_version()}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d}, {time.monotonic() - started:.0f} s")
    print("| probes | attempts | held |\n|---|---|---|")
    for name, results in figures.items():
        print(f"| {name} | {len(results)} | {sum(held for _, held in results)} |")
    print(f"| SIGKILL mid-round: rounds acknowledged / stored, orphan files for gc | 1 | "
          f"{kill['rounds_acknowledged']} / {kill['rounds_stored']}, {kill['orphan_files']} |")
    for name, results in figures.items():
        for what, held in results:
            if not held:
                print(f"NOT HELD ({name}): {what}")


if __name__ == "__main__":
    main()
