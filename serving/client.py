"""HTTP client for a running detector's POST /detect (used by `logrl detect FILE`)."""

from __future__ import annotations

import os
from typing import Any

import httpx

CLIENT_KEY_ENV = "LOGRL_API_KEY"


class DetectError(RuntimeError):
    """The detector refused the request or failed; carries the HTTP status and the server's message."""

    def __init__(self, status_code: int, message: str, from_proxy: bool = False):
        super().__init__(f"/detect answered {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        # Not the detector's JSON error: Ray Serve's proxy answered (e.g. a plain-text 500 for a request that was
        # running on a replica that died), so the same request may well succeed on another replica.
        self.from_proxy = from_proxy


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    """'Authorization: Bearer KEY' for `api_key`, else $LOGRL_API_KEY, else the first of $LOGRL_API_KEYS; or none."""
    key = api_key or os.environ.get(CLIENT_KEY_ENV) or os.environ.get("LOGRL_API_KEYS", "").split(",")[0].strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def detect(
    url: str,
    lines: list[str],
    fast: bool = False,
    timeout: float = 120.0,
    api_key: str | None = None,
    cascade: bool | None = None,
    client: httpx.Client | None = None,
    grounded: bool | None = None,
) -> dict[str, Any]:
    """POST one session's raw log lines to `url`/detect and return the JSON verdict (`cascade`: ask for the
    server's classical first stage, or skip it; `grounded`: decode reasoning mode under the evidence grammar, or
    not; None: the server's default). `client` reuses its connections."""
    body: dict[str, Any] = {"lines": list(lines), "fast": fast}
    if cascade is not None:
        body["cascade"] = cascade
    if grounded is not None:
        body["grounded"] = grounded
    post = client.post if client is not None else httpx.post
    response = post(f"{url.rstrip('/')}/detect", json=body, timeout=timeout, headers=auth_headers(api_key))
    if response.status_code != 200:
        try:
            message, from_proxy = response.json()["error"]["message"], False
        except (ValueError, KeyError, TypeError):
            message, from_proxy = response.text[:500], True
        raise DetectError(response.status_code, message, from_proxy)
    return response.json()
