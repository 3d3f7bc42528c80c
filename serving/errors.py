"""Error bodies in the OpenAI shape, so clients handle /detect, /v1 and the guard's refusals alike."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    503: "ServiceUnavailableError",
    504: "TimeoutError",
}


def error_payload(status_code: int, message: str, param: str | None = None) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}` as vLLM's OpenAI server writes it (code = HTTP status)."""
    error_type = _TYPES.get(status_code, "InternalServerError")
    return {"error": {"message": message, "type": error_type, "param": param, "code": status_code}}


def error_response(
    status_code: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error as a JSON response."""
    return JSONResponse(error_payload(status_code, message, param), status_code=status_code, headers=headers)


def error_bytes(status_code: int, message: str, param: str | None = None) -> bytes:
    """The error body as bytes, for raw ASGI responses."""
    return json.dumps(error_payload(status_code, message, param)).encode("utf-8")
