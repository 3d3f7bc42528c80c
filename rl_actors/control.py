"""A running GRPO job's control point: how many rollout engines it should have, set from outside (`logrl scale`).

The trainer starts one named actor per run (named after its output folder) and reads its target between steps;
`logrl scale --rollout N` (same config) finds it on the cluster and sets the target.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

NAMESPACE = "logrl"


def control_name(output_dir: str | Path) -> str:
    """The control actor's name for a run (its output folder, resolved)."""
    return "logrl-control-" + hashlib.sha1(str(Path(output_dir).resolve()).encode()).hexdigest()[:12]


class ScaleTarget:
    """Pure core: the requested number of rollout engines and the number the trainer runs."""

    def __init__(self, rollout: int):
        self.target = self.engines = rollout

    def request(self, rollout: int) -> dict[str, int]:
        if rollout < 1:
            raise ValueError(f"--rollout: at least one rollout engine (got {rollout})")
        self.target = rollout
        return self.status()

    def rollout_target(self) -> int:
        return self.target

    def applied(self, engines: int) -> None:
        """What the trainer runs now (a refused request sets the target back to it)."""
        self.engines = self.target = engines

    def status(self) -> dict[str, int]:
        return {"rollout_target": self.target, "rollout_engines": self.engines}


def start_control(output_dir: str | Path, rollout: int):
    """The run's control actor (a stale one of an earlier driver for the same folder is replaced), on the driver's
    node: a 0-CPU actor fits any node, and one placed on a worker node would die with it and take the run along."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    driver_node = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(num_cpus=0, scheduling_strategy=driver_node)(ScaleTarget)
    name = control_name(output_dir)
    try:
        ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    except ValueError:
        pass  # none yet: the usual case
    return actor.options(name=name, namespace=NAMESPACE).remote(rollout)


def request_scale(output_dir: str | Path, rollout: int) -> dict[str, int]:
    """Ask the running job that writes to `output_dir` for `rollout` engines; returns its status."""
    import ray

    try:
        control = ray.get_actor(control_name(output_dir), namespace=NAMESPACE)
    except ValueError:
        raise LookupError(f"no GRPO run writing to {output_dir} is running on this Ray cluster") from None
    return ray.get(control.request.remote(rollout))
