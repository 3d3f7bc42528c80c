"""Fixtures every test folder may use."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest


def _free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Call it for a loopback port nothing listens on (Ray, Serve and gloo tests bind only 127.0.0.1)."""
    return _free_loopback_port
