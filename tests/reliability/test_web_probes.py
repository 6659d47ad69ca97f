"""Cross-user and anonymous attempts through the launched app: export files only through the checked
download route, Gradio's run history closed, and queue routes (results, cancel, heartbeat) tied to
the signed-in user (issue 18 items 3 and 9)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

from studio.users import AuthSettings
from tests.app.conftest import ScriptedModels, launched, make_service
from tests.reliability.probes import (
    AUTH,
    cross_user_api_probes,
    export_link,
    file_route_probes,
    framework_probes,
    signed_in,
)


@pytest.fixture(scope="module")
def app_url(module_dir):
    service = make_service(module_dir, ScriptedModels(), auth=AuthSettings.parse(AUTH))
    with launched(service) as url:
        yield url, service


def test_an_export_downloads_only_for_its_maker_and_admins(app_url, caplog):
    url, _ = app_url
    export = export_link(url)
    assert re.fullmatch(r"pairs-[A-Za-z0-9_-]{32}\.jsonl", export["file"].rsplit("/", 1)[-1])
    caplog.set_level(logging.INFO, logger="studio.exports")
    for user in ("carol", "erin"):
        with signed_in(url, user) as http:
            got = http.get(export["download"])
            assert got.status_code == 200, got.text
            assert got.content == Path(export["file"]).read_bytes()
    failed = [what for what, held in file_route_probes(url, export) if not held]
    assert failed == []
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert logged.count("export download:") == 2 and logged.count("export download refused") >= 3


def test_unknown_links_look_like_other_users_links(app_url):
    url, _ = app_url
    export = export_link(url)
    with signed_in(url, "dave") as http:
        theirs, missing = http.get(export["download"]), http.get("exports/not-a-token")
    assert theirs.status_code == missing.status_code == 404 and theirs.json() == missing.json()


def test_no_named_endpoint_reaches_another_users_session(app_url):
    failed = [what for what, held in cross_user_api_probes(app_url[0]) if not held]
    assert failed == []


def test_gradio_routes_are_tied_to_the_signed_in_user(app_url):
    url, _ = app_url
    failed = [what for what, held in framework_probes(url) if not held]
    assert failed == []


@pytest.mark.parametrize("api_name, kwargs, message", [
    ("/keep", {"candidate_id": 2**63}, "candidate id must be between 1 and"),
    ("/keep", {"candidate_id": 1.5}, "candidate id must be a whole number"),
    ("/annotate", {"critique_id": 1, "verdicts": "accept"}, "verdicts must be a mapping"),
    ("/annotate", {"critique_id": 1, "verdicts": ["accept"]}, "verdicts must be a mapping"),
    ("/run_loop", {"prompt": "a fox", "seed": 1.5}, "seed must be a whole number"),
    ("/run_loop", {"prompt": "a fox", "steps": 2.5}, "steps must be a whole number"),
    ("/generate", {"prompt": "a fox", "seed": 2**64}, "seed must be between"),
    ("/export", {"format": "pairs", "parquet": "yes"}, "parquet must be true or false"),
    ("/pick_pair", {"candidate_a": 2**63, "candidate_b": 1, "preference": "A"}, "candidate id must be between"),
    ("/session", {"session_id": 12}, "session id"),
    ("/session", {"session_id": "f" * 32, "images": "yes"}, "images must be true or false"),
    ("/session", {"session_id": "f" * 32, "images": 1}, "images must be true or false"),
    ("/refine_round", {"session_id": ["x"]}, "session id"),
    ("/refine_round", {"session_id": "f" * 32, "prompt": 7}, "prompt must be text"),
    ("/delete_session", {"session_id": {"id": 1}}, "session id"),
    ("/purge_session", {"session_id": ["x"]}, "session id"),
    ("/sessions", {"search": 5}, "search must be text"),
    ("/critique", {"prompt": "a fox", "image": 5}, "image"),
    ("/critique", {"prompt": ["a fox"], "image": ""}, "must be text"),
    ("/generate", {"prompt": "a fox", "candidates": 1.5}, "candidates must be a whole number"),
    ("/run_loop", {"prompt": "a fox", "stop_threshold": "high"}, "stop_threshold must be a number"),
    ("/pick_pair", {"candidate_a": 1, "candidate_b": 2, "preference": ["A"]}, "Pick A, B or tie"),
    ("/export", {"format": 3}, "Unknown export format"),
    ("/review_critique", {"critique_id": 1.5}, "critique id must be a whole number"),
    ("/review_critique", {"critique_id": 2**63}, "critique id must be between 1 and"),
    ("/skip_critique", {"critique_id": "abc"}, "critique id must be a whole number"),
    ("/annotation_queue", {"skipped": "abc"}, "skipped must be a list"),
    ("/annotation_queue", {"skipped": [1.5]}, "critique id must be a whole number"),
    ("/next_pair", {"skipped": [{"a": 1}]}, "pair keys"),
    ("/pick_side", {"left_candidate": 1, "right_candidate": 2, "side": ["left"]}, "Pick left, right or tie"),
    ("/run_loop", {"prompt": "a fox\x00"}, "NUL character"),
])
def test_bad_inputs_through_the_api_get_specific_messages(app_url, api_name, kwargs, message):
    from tests.reliability.probes import client

    with pytest.raises(Exception, match=re.escape(message)):
        client(app_url[0], "erin").predict(api_name=api_name, **kwargs)


def test_a_full_gpu_queue_answers_busy_through_the_web(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from tests.reliability.probes import client

    studio = ScriptedModels()
    studio.critic_double.delay_s = 2.0
    service = make_service(tmp_path, studio, auth=AuthSettings.parse(AUTH), max_queued=2)
    users = ["alice", "bob", "carol", "dave", "erin"]
    with launched(service) as url:
        clients = {user: client(url, user) for user in users}  # signed in before anyone submits

        def one(user: str) -> str:
            try:
                clients[user].predict(prompt=f"{user}'s fox", rounds=1, steps=1, api_name="/run_loop")
                return "ran"
            except AppError as exc:  # the refusal is what is probed
                return str(exc)

        with ThreadPoolExecutor(len(users)) as pool:
            answers = list(pool.map(one, users))
    assert answers.count("ran") == 2, answers
    assert all("The studio is busy: 2 job(s) ahead of you" in a for a in answers if a != "ran"), answers
