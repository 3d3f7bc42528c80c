"""Fixtures every test folder may use."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

# Ray's default worker ports are 10002-19999; ports above them and below the kernel's ephemeral range are ones no
# bind-to-port-0 (Ray's own components, gloo) and no outgoing connection can take between our pick and our bind.
_ABOVE_RAY_WORKER_PORTS = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _quiet_port_range() -> range | None:
    """Ports outside Ray's worker range and the ephemeral range, or None where the ephemeral range is unknown."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return range(_ABOVE_RAY_WORKER_PORTS, low) if low - _ABOVE_RAY_WORKER_PORTS >= 1000 else None


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _os_picked_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_loopback_port_picker(seed: int | None = None) -> Callable[[], int]:
    """A picker of TCP ports free on 127.0.0.1, each returned once, drawn outside the ephemeral range where it is
    known: a port the OS hands out for port 0 can be taken by anything else before the test binds it (seen: Serve's
    proxy failing to bind a port picked a moment earlier)."""
    rng, given = random.Random(seed), set()
    quiet = _quiet_port_range()

    def pick() -> int:
        for _ in range(200 if quiet else 0):
            port = rng.choice(quiet)
            if port not in given and _bindable(port):
                given.add(port)
                return port
        port = _os_picked_port()
        given.add(port)
        return port

    return pick


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Call it for a loopback port nothing listens on (Ray, Serve and gloo tests bind only 127.0.0.1)."""
    return free_loopback_port_picker()
