"""Serve's HTTP proxy, closed: its own `/-/routes` is never answered and `/-/healthz` only to loopback clients.

Ray Serve's proxy answers `/-/routes` (every app name and route prefix) and `/-/healthz` itself, before any
replica's guard sees the request. Serve loads this middleware into the proxy from the import path in
`RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH` (`cluster.environment` sets it for the local clusters logrl starts;
set it in the Ray containers' environment elsewhere). `/-/healthz` stays open to loopback because that is where
KubeRay's readiness probe asks (inside the pod, without a key); the detector's own `GET /health` is unaffected.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from serving.errors import error_bytes
from serving.guard import ASGIApp, Receive, Scope, Send

LOOPBACK_ONLY_ROUTES = frozenset({"/-/healthz"})


def is_loopback(host: str | None) -> bool:
    """Whether a client address is a loopback address (IPv4, IPv6 or IPv4-mapped IPv6)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def proxy_route_allowed(path: str, client_host: str | None) -> bool:
    """Whether the proxy may answer `path` for this client: Serve's `/-/` routes are closed but for the health
    probe from loopback; every other path goes on to the replicas (and their guard)."""
    if not path.startswith("/-/"):
        return True
    return path in LOOPBACK_ONLY_ROUTES and is_loopback(client_host)


class ProxyGuard:
    """ASGI middleware for Serve's proxy app: a 404 in the OpenAI error shape for closed `/-/` routes."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") or (None, None)
        if scope["type"] != "http" or proxy_route_allowed(scope["path"], client[0]):
            await self.app(scope, receive, send)
            return
        body = error_bytes(404, f"no route {scope['path']}")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def proxy_middlewares() -> list[Any]:
    """What Serve's proxy calls (through RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH): its extra middlewares."""
    from starlette.middleware import Middleware

    return [Middleware(ProxyGuard)]
