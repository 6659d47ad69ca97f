"""The web layer's guard around Gradio's own routes, and the one route that serves export files.

Why: Gradio 6 checks the login on most of its routes but not on all, and it ties queue results to a
session hash or an event id, not to a user. With sign-in on, this module's middleware

- refuses the run-history page and its API (`/gradio_api/runs`, `/gradio_api/run-history/...`),
  which the studio does not use and which showed the API schema to anonymous callers;
- requires a signed-in user on every queue route (`queue/join`, `queue/data`, `call/...`,
  `cancel`, `heartbeat/...`, `reset`), `cancel` included, which Gradio leaves open;
- ties each session hash (and each event id of the `/call` API, which Gradio uses as its session
  hash) to the first signed-in user who uses it, and answers any other user 404, so one who learns
  another's hash or event id can neither read their results nor cancel their jobs.

Exports are never served through Gradio's file routes (`allowed_paths`), which let any signed-in
user fetch any export by path: `exports/<token>` goes through `Services.download`, which checks the
role and the owner and logs the attempt. The user behind a request is read the way Gradio reads it
(its auth cookie, or the Hugging Face OAuth session), never from a parameter.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from rr_core.errors import RRError
from storage.errors import NotFound
from studio.container import Services
from studio.exports import DOWNLOAD_PREFIX
from studio.users import OAUTH_PREFIX, RoleRequired

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

API = "/gradio_api"
CLOSED = (f"{API}/runs", f"{API}/run-history")
"""Routes refused to everyone: the studio does not use Gradio's run history."""
QUEUE = (f"{API}/queue/", f"{API}/call/", f"{API}/cancel", f"{API}/heartbeat/", f"{API}/reset")
"""Routes that need a signed-in user, and whose session hash or event id must be that user's."""
MAX_OWNERS = 200_000
"""Session hashes remembered; the oldest are forgotten first (a browser tab uses one)."""


def signed_in_user(connection: HTTPConnection) -> str | None:
    """The user Gradio signed in for this request (its auth cookie), else the Hugging Face OAuth user
    as "hf:<name>" (as ui.identity names them), else None."""
    app = connection.scope.get("app")
    cookie_id = getattr(app, "cookie_id", None)
    tokens = getattr(app, "tokens", None) or {}
    if cookie_id is not None:
        token = (connection.cookies.get(f"access-token-{cookie_id}")
                 or connection.cookies.get(f"access-token-unsecure-{cookie_id}"))
        if token and tokens.get(token):
            return tokens[token]
    if "session" in connection.scope:
        info = connection.session.get("oauth_info") or {}
        name = (info.get("userinfo") or {}).get("preferred_username")
        if name:
            return f"{OAUTH_PREFIX}{name}"
    return None


class SessionOwners:
    """Which user each session hash (or `/call` event id) belongs to: the first who used it."""

    def __init__(self, limit: int = MAX_OWNERS) -> None:
        self.limit = limit
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: str, user: str) -> bool:
        """True when `key` is now or already was `user`'s; False when another user holds it."""
        with self._lock:
            owner = self._owners.get(key)
            if owner is None:
                self._owners[key] = user
                if len(self._owners) > self.limit:
                    self._owners.popitem(last=False)
                return True
            return owner == user


async def _json_body(receive: Receive) -> tuple[bytes, dict[str, Any]]:
    """The whole request body, and its JSON object ({} when it is not one)."""
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        parsed = {}
    return body, parsed if isinstance(parsed, dict) else {}


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


class GradioGuard:
    """ASGI middleware: see the module docstring. Only active when sign-in is on (`enabled`)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], enabled: bool,
                 owners: SessionOwners | None = None) -> None:
        self.app = app
        self.enabled = enabled
        self.owners = owners or SessionOwners()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"][len(scope.get("root_path", "")):] if scope.get("root_path") and \
            scope["path"].startswith(scope["root_path"]) else scope["path"]
        if path.startswith(CLOSED):
            await JSONResponse({"detail": "Not found"}, status_code=404)(scope, receive, send)
            return
        if not self.enabled or not path.startswith(QUEUE):
            await self.app(scope, receive, send)
            return
        user = signed_in_user(HTTPConnection(scope))
        if user is None:
            await JSONResponse({"detail": "Sign in first."}, status_code=401)(scope, receive, send)
            return
        keys: list[str] = []
        if path.startswith(f"{API}/heartbeat/"):
            keys.append(path.rsplit("/", 1)[-1])
        elif path.startswith(f"{API}/queue/data"):
            keys += parse_qs(scope.get("query_string", b"").decode()).get("session_hash", [])
        elif path.startswith(f"{API}/call/") and scope["method"] == "GET":
            keys.append(path.rstrip("/").rsplit("/", 1)[-1])
        if scope["method"] == "POST":
            body, parsed = await _json_body(receive)
            receive = _replay(body)
            keys += [str(parsed[k]) for k in ("session_hash", "event_id") if parsed.get(k)]
        if not all(self.owners.claim(key, user) for key in keys):
            log.warning("refused %s %s: session %s… belongs to another user", user, path, keys[0][:8])
            await JSONResponse({"detail": "Not found"}, status_code=404)(scope, receive, send)
            return
        if path.startswith(f"{API}/call/") and scope["method"] == "POST":
            send = self._claiming_event_ids(send, user)
        await self.app(scope, receive, send)

    def _claiming_event_ids(self, send: Send, user: str) -> Send:
        """Claim the event id a `/call` POST answers with for its caller: Gradio uses it as the
        session hash under which the result waits."""
        buffered: list[bytes] = []

        async def claiming(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body":
                buffered.append(message.get("body", b""))
                if not message.get("more_body", False):
                    try:
                        event_id = json.loads(b"".join(buffered)).get("event_id")
                    except (ValueError, AttributeError):
                        event_id = None
                    if event_id:
                        self.owners.claim(str(event_id), user)
            await send(message)
        return claiming


def download_route(service: Services) -> Route:
    """`GET exports/<token>`: the export file for the reviewer who made it (or an admin); 401 without
    sign-in, 403 without the role, 404 for an unknown, expired or another user's link."""

    async def download(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            path = await run_in_threadpool(service.download, signed_in_user(request), token)
        except NotFound as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except RoleRequired as exc:
            return JSONResponse({"detail": str(exc)}, status_code=403)
        except RRError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=401)
        return FileResponse(path, filename=path.name, headers={"Cache-Control": "no-store"})

    return Route(f"/{DOWNLOAD_PREFIX}{{token}}", download, methods=["GET"])


def app_kwargs(service: Services) -> dict[str, Any]:
    """What Gradio's FastAPI app is built with: the download route and the guard middleware."""
    return {"routes": [download_route(service)],
            "middleware": [Middleware(GradioGuard, enabled=service.auth.enabled)]}
