"""The learner ranks' rendezvous store listens on the master address only (torch's own binds every interface)."""

from __future__ import annotations

import psutil

from rl_actors.learner import rendezvous_store


def _listening() -> dict[int, str]:
    return {c.laddr.port: c.laddr.ip for c in psutil.Process().net_connections("inet") if c.status == "LISTEN"}


def test_rank_0_serves_the_store_on_the_master_address_and_rank_1_reaches_it(free_port):
    port = free_port()
    store = rendezvous_store("127.0.0.1", port, rank=0, world_size=2)
    assert _listening()[port] == "127.0.0.1"  # torch's own TCPStore: "::" (every interface)
    client = rendezvous_store("127.0.0.1", port, rank=1, world_size=2)
    client.set("from-rank-1", "hello")
    assert store.get("from-rank-1") == b"hello"
    assert set(_listening().values()) <= {"127.0.0.1", "::ffff:127.0.0.1"}
