"""ASGI guard in front of the detector's app: route allowlist, API keys, body cap, bounded queue, timeout.

It wraps vLLM's FastAPI app (plus /detect) inside each replica, so every refusal is an OpenAI-shaped JSON error:
unknown and operational routes (/docs, /metrics, /scale_elastic_ep, ...) 404, a missing key 401, a big body 413,
a full queue 429, a request still queued at the timeout 503, a /detect still running at the timeout 504.
/admin/* needs an admin key (403 when none is configured); it bypasses the queue, so a busy replica can still be
switched to a new adapter.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from serving.auth import bearer_key, is_authorized
from serving.errors import error_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_ROUTES = frozenset({"/health"})  # no key needed, says nothing but "up"
GUARDED_ROUTES = frozenset({"/detect", "/v1/models", "/v1/chat/completions", "/v1/completions"})
MODEL_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
ADMIN_ROUTES = frozenset({"/admin/adapters"})
TOO_DEEP = "body is not valid JSON: nested too deeply"


@dataclass(frozen=True)
class GuardSettings:
    """What the guard enforces; `key_digests` empty means auth is disabled (explicitly, by config)."""

    key_digests: frozenset[str]
    max_request_bytes: int
    max_ongoing_requests: int
    max_queued_requests: int
    request_timeout_s: float
    adapter_name: str
    default_model: str = "adapter"  # or "reject"
    admin_key_digests: frozenset[str] | None = frozenset()  # None: open (auth disabled); empty: /admin/* closed


class RequestRefused(Exception):
    """A request the guard answers itself."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status_code, self.message, self.headers = status_code, message, headers or {}


def public_model_list(payload: Any) -> Any:
    """/v1/models without filesystem paths: a card's absolute `root`/`parent` becomes the card's (or folder's) name."""
    for card in payload.get("data", []) if isinstance(payload, dict) else []:
        for key in ("root", "parent"):
            value = card.get(key)
            if isinstance(value, str) and os.path.isabs(value):
                card[key] = card.get("id") if key == "root" else os.path.basename(value.rstrip("/"))
    return payload


def with_default_model(body: bytes, adapter_name: str, default_model: str) -> bytes:
    """A /v1 body naming no model gets the adapter, or is refused (400) when the config says so."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body  # vLLM answers malformed JSON itself
    except RecursionError:  # vLLM's own parse would fail the same way, as a 500
        raise RequestRefused(400, TOO_DEEP) from None
    if not isinstance(payload, dict) or payload.get("model"):
        return body
    if default_model == "reject":
        raise RequestRefused(400, "model is required: name the adapter or the base model (see GET /v1/models)")
    payload["model"] = adapter_name
    return json.dumps(payload).encode("utf-8")


class DetectorGuard:
    """The ASGI middleware; one per replica, so the queue bound is per replica."""

    def __init__(self, app: ASGIApp, settings: GuardSettings):
        self.app = app
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_ongoing_requests)
        self._admitted = 0  # working + waiting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no websocket route is served: refuse before the app sees it
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope["path"] in OPEN_ROUTES:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._guarded(scope, receive, tracking_send)
        except RequestRefused as refusal:
            if not started:
                await _send_error(send, refusal)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, settings = scope["path"], self.settings
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        if path in ADMIN_ROUTES:
            await self._admin(scope, receive, send, headers)
            return
        if path not in GUARDED_ROUTES:
            raise RequestRefused(404, f"no route {path}")
        if settings.key_digests and not is_authorized(bearer_key(headers.get("authorization")), settings.key_digests):
            raise RequestRefused(
                401, "missing or invalid API key: send 'Authorization: Bearer KEY'", {"www-authenticate": "Bearer"}
            )
        if self._admitted >= settings.max_ongoing_requests + settings.max_queued_requests:
            raise RequestRefused(429, "the detector's queue is full; retry later", {"retry-after": "1"})
        self._admitted += 1
        try:
            body = await _read_body(receive, headers, settings.max_request_bytes)
            if path in MODEL_ROUTES and scope["method"] == "POST":
                body = with_default_model(body, settings.adapter_name, settings.default_model)
            await self._run(scope, _replay(body, receive), send, path)
        finally:
            self._admitted -= 1

    async def _admin(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        digests = self.settings.admin_key_digests
        if digests is not None:
            if not digests:
                raise RequestRefused(
                    403, "the admin API is off: configure serve.admin_api_keys or $LOGRL_ADMIN_API_KEYS"
                )
            if not is_authorized(bearer_key(headers.get("authorization")), digests):
                raise RequestRefused(
                    401,
                    "missing or invalid admin key: send 'Authorization: Bearer ADMIN_KEY'",
                    {"www-authenticate": "Bearer"},
                )
        body = await _read_body(receive, headers, self.settings.max_request_bytes)
        await self.app(scope, _replay(body, receive), send)

    async def _run(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        timeout = self.settings.request_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except TimeoutError:
            raise RequestRefused(503, f"the detector is busy: still queued after {timeout:g}s") from None
        try:
            if path == "/v1/models":
                send = _public_models_send(send)
            if path == "/detect":  # non-streaming: the whole answer is bounded; /v1 streams are not cut
                try:
                    await asyncio.wait_for(self.app(scope, receive, send), max(deadline - loop.time(), 0.001))
                except TimeoutError:
                    raise RequestRefused(504, f"/detect did not finish within {timeout:g}s") from None
            else:
                await self.app(scope, receive, send)
        finally:
            self._slots.release()


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise RequestRefused(413, f"request body over the limit of {limit} bytes")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestRefused(499, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, f"request body over the limit of {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the server's would

    return replay


def _public_models_send(send: Send) -> Send:
    """Buffer the /v1/models answer and rewrite paths out of it."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def rewriting_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = dict(message)
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        try:
            body = json.dumps(public_model_list(json.loads(body))).encode("utf-8")
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        start["headers"] = [*headers, (b"content-length", str(len(body)).encode())]
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return rewriting_send


async def _send_error(send: Send, refusal: RequestRefused) -> None:
    body = error_bytes(refusal.status_code, refusal.message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
