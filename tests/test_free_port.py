"""The free-port picker: distinct ports, bindable, outside the ephemeral range where the kernel says what it is."""

from __future__ import annotations

import socket

from tests.conftest import _quiet_port_range, free_loopback_port_picker


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    pick = free_loopback_port_picker(seed=0)
    ports = [pick() for _ in range(50)]
    assert len(set(ports)) == 50
    quiet = _quiet_port_range()
    if quiet is not None:
        assert all(port in quiet for port in ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_picked_again():
    first = free_loopback_port_picker(seed=1)()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", first))
        holder.listen()
        again = free_loopback_port_picker(seed=1)  # same draw order: the held port comes up first and is skipped
        assert again() != first
