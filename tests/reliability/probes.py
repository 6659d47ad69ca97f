"""Attack probes over the launched app, as a careful tester of a trusted system sends them: each
returns (attempts, held) so the tests assert all held and `python -m bench.reliability` prints the
figures. Users: alice and bob design, carol and dave annotate, erin administers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from gradio_client import Client
from gradio_client.exceptions import AppError

AUTH = "alice:pa:designer,bob:pb:designer,carol:pc:annotator,dave:pd:annotator,erin:pe:admin"
PASSWORDS = {"alice": "pa", "bob": "pb", "carol": "pc", "dave": "pd", "erin": "pe"}


@contextmanager
def signed_in(url: str, user: str | None) -> Iterator[httpx.Client]:
    """An HTTP client with `user`'s login cookie (None: anonymous)."""
    with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as http:
        if user is not None:
            answer = http.post("login", data={"username": user, "password": PASSWORDS[user]})
            if answer.status_code != 200:
                raise RuntimeError(f"login of {user} failed: {answer.status_code} {answer.text[:200]}")
        yield http


def status(http: httpx.Client, method: str, path: str, **kwargs) -> int:
    """The status of a request, read from its headers only: a stream another user's results would
    flow through (SSE) is never read to its end."""
    try:
        with http.stream(method, path, timeout=10, **kwargs) as answer:
            return answer.status_code
    except httpx.TimeoutException:
        return 0


def client(url: str, user: str) -> Client:
    return Client(url, auth=(user, PASSWORDS[user]), verbose=False)


def export_link(url: str, user: str = "carol") -> dict:
    """An export made by `user` through the API: its server path and its download link."""
    return client(url, user).predict(format="pairs", api_name="/export")


def file_route_probes(url: str, export: dict) -> list[tuple[str, bool]]:
    """Fetch another reviewer's export through the download route and through Gradio's file routes:
    (what was tried, held)."""
    results = []
    for user, allowed in ((None, False), ("alice", False), ("bob", False), ("dave", False)):
        with signed_in(url, user) as http:
            got = status(http, "GET", export["download"])
            results.append((f"{user or 'anonymous'} GET download link", (got == 200) == allowed))
            for route in (f"gradio_api/file={export['file']}", f"gradio_api/file/{export['file']}"):
                got = status(http, "GET", route)
                results.append((f"{user or 'anonymous'} GET {route.split('=')[0]}", got != 200))
    return results


def framework_probes(url: str) -> list[tuple[str, bool]]:
    """Gradio's own routes: run history, cancel, and another user's queue results."""
    results = []
    with signed_in(url, None) as anonymous:
        results.append(("anonymous GET /gradio_api/runs", status(anonymous, "GET", "gradio_api/runs") != 200))
        results.append(("anonymous GET /gradio_api/info", status(anonymous, "GET", "gradio_api/info") != 200))
        cancel = status(anonymous, "POST", "gradio_api/cancel",
                        json={"session_hash": "x", "fn_index": 0, "event_id": "y"})
        results.append(("anonymous POST /gradio_api/cancel", cancel in (401, 403)))
        results.append(("anonymous GET /gradio_api/queue/data",
                        status(anonymous, "GET", "gradio_api/queue/data", params={"session_hash": "x"}) != 200))
    with signed_in(url, "alice") as alice, signed_in(url, "bob") as bob:
        event_id = alice.post("gradio_api/call/sessions", json={"data": [""]}).json()["event_id"]
        stolen = status(bob, "GET", f"gradio_api/call/sessions/{event_id}")
        results.append(("bob reads alice's /call event", stolen != 200))
        cancel = status(bob, "POST", "gradio_api/cancel",
                        json={"session_hash": event_id, "fn_index": 0, "event_id": event_id})
        results.append(("bob cancels alice's /call event", cancel != 200))
        try:
            own = alice.get(f"gradio_api/call/sessions/{event_id}")
            intact = own.status_code == 200 and "complete" in own.text
        except httpx.HTTPError:  # the stream was cut: bob's cancel went through
            intact = False
        results.append(("alice still reads her own event", intact))
        session_hash = "alice-tab-1"
        config = alice.get("config").json()
        fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "sessions")
        joined = alice.post("gradio_api/queue/join", json={"data": [""], "fn_index": fn_index,
                                                             "session_hash": session_hash, "event_data": None,
                                                             "trigger_id": None})
        results.append(("alice joins the queue", joined.status_code == 200))
        stolen = status(bob, "GET", "gradio_api/queue/data", params={"session_hash": session_hash})
        results.append(("bob streams alice's queue results", stolen != 200))
        hijack = status(bob, "POST", "gradio_api/queue/join", json={"data": [""], "fn_index": fn_index,
                                                                      "session_hash": session_hash,
                                                                      "event_data": None, "trigger_id": None})
        results.append(("bob joins under alice's session hash", hijack != 200))
        beat = status(bob, "GET", f"gradio_api/heartbeat/{session_hash}")
        results.append(("bob's heartbeat on alice's session hash", beat != 200))
    return results


def critique_of(url: str, candidate_id: int) -> int:
    """The id of the critique of round `candidate_id`, found through an admin's review queue (whose
    lease it then gives back)."""
    admin, skipped = client(url, "erin"), []
    while item := admin.predict(skipped=skipped, api_name="/annotation_queue"):
        admin.predict(critique_id=item["critique_id"], api_name="/skip_critique")
        if item["candidate_id"] == candidate_id:
            return item["critique_id"]
        skipped.append(item["critique_id"])
    raise LookupError(f"no critique of round {candidate_id} in the review queue")


def cross_user_api_probes(url: str) -> list[tuple[str, bool]]:
    """Bob (a designer) and dave (an annotator, who may read but not change) go at alice's session
    through every named endpoint that takes an id or needs a role; held when refused."""
    alice = client(url, "alice")
    run = alice.predict(prompt="alice's private castle", rounds=2, steps=1, stop_threshold=0, api_name="/run_loop")
    sid = run["session_id"]
    rid, rid2 = (r["candidates"][0]["candidate_id"] for r in run["rounds"])
    cid = critique_of(url, rid)
    attempts = {
        "bob": [("/session", {"session_id": sid}), ("/refine_round", {"session_id": sid, "prompt": "x"}),
                ("/delete_session", {"session_id": sid}), ("/keep", {"candidate_id": rid}),
                ("/pick_pair", {"candidate_a": rid, "candidate_b": rid2, "preference": "A"}),
                ("/annotate", {"critique_id": 1, "verdicts": {"text_faithfulness": {"verdict": "reject"}}}),
                ("/annotation_queue", {}), ("/next_pair", {}), ("/export", {"format": "pairs"}),
                ("/review_critique", {"critique_id": cid}), ("/skip_critique", {"critique_id": cid}),
                ("/undo_annotation", {}), ("/critique_progress", {}),
                ("/pick_side", {"left_candidate": rid, "right_candidate": rid2, "side": "left"}),
                ("/skip_pair", {"candidate_a": rid, "candidate_b": rid2}), ("/undo_pick", {}),
                ("/pair_progress", {}), ("/agreement", {}), ("/disagreements", {}),
                ("/hidden_sessions", {}), ("/purge_session", {"session_id": sid})],
        "dave": [("/refine_round", {"session_id": sid, "prompt": "x"}), ("/delete_session", {"session_id": sid}),
                 ("/keep", {"candidate_id": rid}), ("/disagreements", {}), ("/hidden_sessions", {}),
                 ("/purge_session", {"session_id": sid})],
    }
    results = []
    for user, calls in attempts.items():
        intruder = client(url, user)
        for api_name, kwargs in calls:
            try:
                intruder.predict(api_name=api_name, **kwargs)
                held = False
            except AppError:  # the endpoint refused: what is probed
                held = True
            results.append((f"{user} {api_name} on alice's session", held))
    still = alice.predict(session_id=sid, api_name="/session")
    results.append(("alice's session unchanged", len(still["rounds"]) == 2
                    and not any(c.get("kept") or c.get("chosen") for r in still["rounds"] for c in r["candidates"])))
    return results
