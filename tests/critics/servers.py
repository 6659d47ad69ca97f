"""Servers for the HTTP tests: rr_core.serve over the tiny model, and a peer that misbehaves on purpose."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_uvicorn(app) -> Iterator[str]:
    """Serve `app` on a free local port in a thread; yields the /v1 base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


GOOD_ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "peer",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "{text}"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
}


TRICKLE = "<trickle>"
"""A scripted body meaning: send the headers, then one whitespace byte every `delay_s`, and never finish
(whitespace is valid before JSON and is an empty line to an SSE reader, so only a total deadline ends it)."""


class MisbehavingPeer:
    """A chat-completions server whose answers a test scripts, one per request: (status, body, delay_s).

    `models_delay_s` delays GET /models (a start-up check that hangs). `disconnects` records when each
    client went away while the peer was still hanging or trickling."""

    def __init__(self, answers: list[tuple[int, str, float]], repeat_last: bool = True,
                 models_delay_s: float = 0.0, name: str = "peer") -> None:
        self.answers = answers
        self.repeat_last = repeat_last
        self.models_delay_s = models_delay_s
        self.requests: list[dict] = []
        self.disconnects: list[float] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def do_GET(self) -> None:
                time.sleep(peer.models_delay_s)
                self._send(200, json.dumps({"object": "list", "data": [{"id": name, "object": "model"}]}))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                peer.requests.append(json.loads(body))
                index = min(len(peer.requests), len(peer.answers)) - 1
                status, text, delay_s = peer.answers[index]
                if text == TRICKLE:
                    self._trickle(delay_s)
                    return
                if not self._wait(delay_s):
                    return
                self._send(status, text)

            def _wait(self, seconds: float) -> bool:
                """Sleep, watching the socket: False (and a recorded disconnect) when the client leaves."""
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    readable, _, _ = select.select([self.connection], [], [], min(0.02, end - time.monotonic()))
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        peer.disconnects.append(time.monotonic())
                        return False
                return True

            def _trickle(self, interval_s: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                for _ in range(int(30 / max(interval_s, 0.01))):
                    try:
                        self.wfile.write(b"\n")
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        peer.disconnects.append(time.monotonic())
                        return
                    if not self._wait(interval_s):
                        return

            def _send(self, status: int, text: str) -> None:
                payload = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> MisbehavingPeer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def answer(text: str) -> str:
    return json.dumps(GOOD_ANSWER).replace("{text}", json.dumps(text)[1:-1])
