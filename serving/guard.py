"""ASGI guard in front of the detector's app: route allowlist, API keys, body cap, fair queues, timeout.

It wraps vLLM's FastAPI app (plus /detect) inside each replica, so every refusal is an OpenAI-shaped JSON error:
unknown and operational routes (/docs, /metrics, /scale_elastic_ep, ...) 404, a wrong method 405, a missing key
401, a big body 413, a /v1 request over a cap 400 (`serving.fairness`), a full queue or a key over its token
budget 429 with Retry-After, a request still queued at the timeout 503, a /detect still running at the timeout
504. /detect and /v1 generation wait for separate slots, so bulk /v1 work never holds the ones /detect needs.
Errors the inner app writes in FastAPI's `{"detail": ...}` shape are rewritten into the OpenAI shape.
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

from serving.auth import bearer_key, digest, is_authorized
from serving.errors import error_bytes
from serving.fairness import CapExceeded, OpenAICaps, TokenBuckets, budget_refusal, retry_after_header, shape_v1_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_ROUTES = frozenset({"/health"})  # no key needed, says nothing but "up"
GUARDED_ROUTES = frozenset({"/detect", "/v1/models", "/v1/chat/completions", "/v1/completions"})
MODEL_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
ADMIN_ROUTES = frozenset({"/admin/adapters"})
ROUTE_METHODS = {
    "/detect": ("POST",),
    "/v1/models": ("GET",),
    "/v1/chat/completions": ("POST",),
    "/v1/completions": ("POST",),
    "/admin/adapters": ("GET", "POST"),
}
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
    openai_caps: OpenAICaps = OpenAICaps()
    max_ongoing_bulk_requests: int = 1  # /v1 generations at once; /detect has max_ongoing_requests of its own
    tokens_per_minute_per_key: float | None = None  # this replica's share of each key's /v1 budget


class RequestRefused(Exception):
    """A request the guard answers itself."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None, param: str | None = None):
        super().__init__(message)
        self.status_code, self.message, self.headers, self.param = status_code, message, headers or {}, param


def public_model_list(payload: Any) -> Any:
    """/v1/models without filesystem paths: a card's `root` is its own name (vLLM puts the model's folder there,
    relative or absolute), and a `parent` that is a path becomes the folder's name."""
    for card in payload.get("data", []) if isinstance(payload, dict) else []:
        if "root" in card:
            card["root"] = card.get("id")
        parent = card.get("parent")
        if isinstance(parent, str) and (os.path.isabs(parent) or os.path.exists(parent)):
            card["parent"] = os.path.basename(parent.rstrip("/"))
    return payload


def json_object(body: bytes) -> dict:
    """A request body as a JSON object, or the OpenAI-shaped refusal of one that is not."""
    try:
        payload = json.loads(body)
    except UnicodeDecodeError:
        raise RequestRefused(422, "body is not valid UTF-8") from None
    except json.JSONDecodeError as err:
        raise RequestRefused(400, f"body is not valid JSON: {err.msg} at character {err.pos}") from None
    except RecursionError:
        raise RequestRefused(400, TOO_DEEP) from None
    if not isinstance(payload, dict):
        raise RequestRefused(400, "body must be a JSON object")
    return payload


def with_default_model(payload: dict, adapter_name: str, default_model: str) -> dict:
    """A /v1 body naming no model gets the adapter, or is refused (400) when the config says so."""
    if payload.get("model"):
        return payload
    if default_model == "reject":
        raise RequestRefused(
            400, "model is required: name the adapter or the base model (see GET /v1/models)", param="model"
        )
    return {**payload, "model": adapter_name}


class DetectorGuard:
    """The ASGI middleware; one per replica, so the queue bound is per replica."""

    def __init__(self, app: ASGIApp, settings: GuardSettings):
        self.app = app
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_ongoing_requests)  # /detect, /v1/models
        self._bulk_slots = asyncio.Semaphore(settings.max_ongoing_bulk_requests)  # /v1 generation
        self._admitted = 0  # working + waiting
        self._budgets = (
            TokenBuckets.per_minute(settings.tokens_per_minute_per_key) if settings.tokens_per_minute_per_key else None
        )
        self._mean_service_s = 1.0  # running mean of a request's time in a slot, for Retry-After

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
            await self._guarded(scope, receive, _openai_errors(tracking_send))
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
        key = bearer_key(headers.get("authorization"))
        if settings.key_digests and not is_authorized(key, settings.key_digests):
            raise RequestRefused(
                401, "missing or invalid API key: send 'Authorization: Bearer KEY'", {"www-authenticate": "Bearer"}
            )
        _check_method(path, scope["method"])
        capacity = settings.max_ongoing_requests + settings.max_ongoing_bulk_requests + settings.max_queued_requests
        if self._admitted >= capacity:
            wait_s = self._mean_service_s * self._admitted / (capacity - settings.max_queued_requests)
            raise RequestRefused(429, "the detector's queue is full; retry later", retry_after_header(min(wait_s, 60)))
        self._admitted += 1
        try:
            body = await _read_body(receive, headers, settings.max_request_bytes)
            if path in MODEL_ROUTES:  # budgets per configured key; with auth disabled, one for everyone
                key_id = digest(key) if key and settings.key_digests else "anonymous"
                body = self._admit_generation(body, path, key_id)
            await self._run(scope, _replay(body, receive), send, path)
        finally:
            self._admitted -= 1

    def _admit_generation(self, body: bytes, path: str, key_id: str) -> bytes:
        """A /v1 generation body with the default model, within the caps and paid for from the key's budget."""
        settings = self.settings
        payload = with_default_model(json_object(body), settings.adapter_name, settings.default_model)
        try:
            payload, cost = shape_v1_request(payload, path, settings.openai_caps)
        except CapExceeded as err:
            raise RequestRefused(400, err.message, param=err.param) from None
        if self._budgets is not None:
            wait_s = self._budgets.take(key_id, cost)
            if wait_s > 0:
                message, retry = budget_refusal(wait_s, cost)
                raise RequestRefused(429, message, retry)
        return json.dumps(payload).encode("utf-8")

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
        slots = self._bulk_slots if path in MODEL_ROUTES else self._slots
        try:
            await asyncio.wait_for(slots.acquire(), timeout)
        except TimeoutError:
            raise RequestRefused(
                503, f"the detector is busy: still queued after {timeout:g}s", retry_after_header(timeout / 4)
            ) from None
        started = loop.time()
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
            slots.release()
            if path == "/detect":
                self._mean_service_s = 0.9 * self._mean_service_s + 0.1 * (loop.time() - started)


def _check_method(path: str, method: str) -> None:
    allowed = ROUTE_METHODS.get(path, ())
    if method not in allowed:
        raise RequestRefused(
            405, f"{method} is not allowed on {path}; use {' or '.join(allowed)}", {"allow": ", ".join(allowed)}
        )


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


def _buffered_rewrite(
    send: Send, wanted: Callable[[Message], bool], rewrite: Callable[[int, bytes], tuple[bytes, bytes | None]]
) -> Send:
    """Buffer the body of a response whose start message is `wanted` and send it once, rewritten: `rewrite(status,
    body)` returns the new body and a new content type (None keeps the old); content-length follows the new body.
    Every other response passes through untouched, streamed or not."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def rewriting_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and wanted(message):
            start = dict(message)
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body, content_type = rewrite(start.get("status", 200), b"".join(chunks))
        dropped = (b"content-length", b"content-type") if content_type else (b"content-length",)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
        if content_type:
            headers.append((b"content-type", content_type))
        start["headers"] = [*headers, (b"content-length", str(len(body)).encode())]
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return rewriting_send


def _public_models_send(send: Send) -> Send:
    """Buffer the /v1/models answer and rewrite paths out of it."""

    def rewrite(status: int, body: bytes) -> tuple[bytes, bytes | None]:
        try:
            return json.dumps(public_model_list(json.loads(body))).encode("utf-8"), None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return body, None

    return _buffered_rewrite(send, lambda start: True, rewrite)


def _openai_errors(send: Send) -> Send:
    """Rewrite an error answered in FastAPI's `{"detail": ...}` shape (vLLM's parse errors, a wrong method) into
    the OpenAI shape; every other response passes through untouched, streamed or not."""

    def rewrite(status: int, body: bytes) -> tuple[bytes, bytes | None]:
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return body, None
        if not isinstance(payload, dict) or "detail" not in payload or "error" in payload:
            return body, None
        detail = payload["detail"]
        return error_bytes(status, detail if isinstance(detail, str) else json.dumps(detail)), b"application/json"

    return _buffered_rewrite(send, lambda start: start.get("status", 200) >= 400, rewrite)


async def _send_error(send: Send, refusal: RequestRefused) -> None:
    body = error_bytes(refusal.status_code, refusal.message, refusal.param)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
