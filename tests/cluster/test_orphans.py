"""A SIGKILLed actor takes the processes it started with it (a GPU rollout actor's vLLM engine core runs in one)."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = pytest.mark.ray


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_a_killed_actors_child_process_does_not_outlive_it():
    import ray

    from cluster.environment import init_ray

    @ray.remote(num_cpus=0)
    class Engine:
        def start(self) -> tuple[int, int]:
            import multiprocessing
            import time

            # Stands in for vLLM's engine-core process: started the way vLLM starts it (spawn), then it waits.
            self.core = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(600,), daemon=False)
            self.core.start()
            return os.getpid(), self.core.pid

    init_ray(None, 2)
    try:
        actor_pid, core_pid = ray.get(Engine.remote().start.remote())
        assert not _gone(core_pid)
        os.kill(actor_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60  # the raylet notices the death, then kills the worker's process group
        while not _gone(core_pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not _gone(core_pid):
            os.kill(core_pid, signal.SIGKILL)
            pytest.fail("the killed actor's child process outlived it")
    finally:
        ray.shutdown()
