"""API keys: gathered from config, env and file, kept as sha256 digests, required unless auth is disabled."""

from __future__ import annotations

import hashlib

import pytest

from serving.auth import bearer_key, digest, is_authorized, key_digests
from serving.config import ServeConfig


def test_keys_from_config_env_and_file_are_kept_only_as_digests(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# team keys\nfile-key\n{digest('hashed-in-file')}\n")
    cfg = ServeConfig(
        api_keys=["plain-key", digest("hashed-key").upper().replace("SHA256:", "sha256:")], api_keys_file=str(keys_file)
    )
    digests = key_digests(cfg, environ={"LOGRL_API_KEYS": "env-a, env-b"})
    assert len(digests) == 6
    assert all(d.startswith("sha256:") and len(d) == 71 for d in digests)
    assert "plain-key" not in "".join(digests)
    for key in ("plain-key", "hashed-key", "file-key", "hashed-in-file", "env-a", "env-b"):
        assert is_authorized(key, digests)
    assert not is_authorized("nope", digests) and not is_authorized(None, digests)
    assert digest("k") == "sha256:" + hashlib.sha256(b"k").hexdigest()


def test_auth_on_without_keys_fails_fast_and_disabled_means_no_keys():
    with pytest.raises(ValueError, match="no API key is configured"):
        key_digests(ServeConfig(), environ={})
    assert key_digests(ServeConfig(auth="disabled", api_keys=["k"]), environ={}) == frozenset()
    with pytest.raises(ValueError, match="64-digit hex"):
        key_digests(ServeConfig(api_keys=["sha256:abc"]), environ={})


def test_bearer_header_parsing():
    assert bearer_key("Bearer abc") == "abc" and bearer_key("bearer  abc ") == "abc"
    assert bearer_key("Basic abc") is None and bearer_key(None) is None and bearer_key("Bearer ") is None
