"""API keys for the detector: gathered from config, $LOGRL_API_KEYS and a key file, kept only as sha256 digests."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from serving.config import ServeConfig

ENV_VAR = "LOGRL_API_KEYS"
ADMIN_ENV_VAR = "LOGRL_ADMIN_API_KEYS"
DIGEST_PREFIX = "sha256:"


def digest(key: str) -> str:
    """The at-rest form of a key: 'sha256:<hex>'."""
    return DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _as_digest(entry: str) -> str:
    entry = entry.strip()
    if entry.startswith(DIGEST_PREFIX):
        hex_part = entry[len(DIGEST_PREFIX) :].lower()
        if len(hex_part) != 64 or any(c not in "0123456789abcdef" for c in hex_part):
            raise ValueError(f"{DIGEST_PREFIX}… API key entry is not a 64-digit hex sha256 digest")
        return DIGEST_PREFIX + hex_part
    return digest(entry)


def _entries(lines: Iterable[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def key_digests(serve_cfg: ServeConfig, environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every accepted key as a digest; empty when auth is disabled. Fails if auth is on and no key is configured."""
    if serve_cfg.auth == "disabled":
        return frozenset()
    environ = os.environ if environ is None else environ
    entries = _entries(serve_cfg.api_keys) + _entries(environ.get(ENV_VAR, "").split(","))
    if serve_cfg.api_keys_file:
        entries += _entries(Path(serve_cfg.api_keys_file).read_text(encoding="utf-8").splitlines())
    if not entries:
        raise ValueError(
            f"serve.auth is enabled but no API key is configured: set ${ENV_VAR}, serve.api_keys or "
            "serve.api_keys_file, or set serve.auth: disabled for a local, loopback-only run"
        )
    return frozenset(_as_digest(entry) for entry in entries)


def admin_key_digests(serve_cfg: ServeConfig, environ: Mapping[str, str] | None = None) -> frozenset[str] | None:
    """Digests of the keys for /admin/*: None when auth is disabled (open), empty when no admin key is set (closed)."""
    if serve_cfg.auth == "disabled":
        return None
    environ = os.environ if environ is None else environ
    entries = _entries(serve_cfg.admin_api_keys) + _entries(environ.get(ADMIN_ENV_VAR, "").split(","))
    return frozenset(_as_digest(entry) for entry in entries)


def bearer_key(authorization: str | None) -> str | None:
    """The key of an 'Authorization: Bearer KEY' header, or None."""
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


def is_authorized(key: str | None, digests: frozenset[str]) -> bool:
    """Whether `key` matches one accepted digest (constant-time comparison per digest)."""
    if key is None:
        return False
    candidate = digest(key)
    return any(hmac.compare_digest(candidate, known) for known in digests)
