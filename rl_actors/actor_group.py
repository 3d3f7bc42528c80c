"""N copies of one actor role placed over a placement group (rollout, reward and learner roles share it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from reward_workers.worker import split_evenly

# The driver's settings for vLLM, HF and caches follow every actor (merged into the job's runtime_env).
FORWARDED_ENV_PREFIXES = ("VLLM_", "HF_", "TRANSFORMERS_", "TORCH_EXTENSIONS_DIR", "TMPDIR", "TOKENIZERS_", "OMP_")


def forwarded_env() -> dict[str, str]:
    """The driver's environment variables that actors must share."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


class ActorGroup:
    """Spawn `num_workers` actors of a `@ray.remote` class, one per placement-group bundle."""

    def __init__(
        self,
        remote_cls: Any,
        num_workers: int,
        *,
        num_cpus: float,
        num_gpus: float = 0,
        strategy: str = "PACK",
        kwargs_for_rank: Callable[[int], dict] = lambda rank: {},
        runtime_env: dict | None = None,
        name: str = "group",
    ):
        bundle = {"CPU": num_cpus, **({"GPU": num_gpus} if num_gpus else {})}
        self.name = name
        self.placement_group = placement_group([dict(bundle) for _ in range(num_workers)], strategy=strategy)
        ray.get(self.placement_group.ready())
        self.workers = [
            remote_cls.options(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                runtime_env=runtime_env or {"env_vars": forwarded_env()},
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.placement_group, placement_group_bundle_index=rank
                ),
            ).remote(**kwargs_for_rank(rank))
            for rank in range(num_workers)
        ]

    def __len__(self) -> int:
        return len(self.workers)

    def call(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Call one method with the same arguments on every worker; wait for all results."""
        return ray.get([getattr(w, method).remote(*args, **kwargs) for w in self.workers])

    def call_sharded(self, method: str, items: Sequence[Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Give each worker one contiguous shard of `items`; return the per-worker results in order."""
        bounds = split_evenly(len(items), len(self.workers))
        return ray.get(
            [getattr(w, method).remote(list(items[s:e]), *args, **kwargs) for w, (s, e) in zip(self.workers, bounds)]
        )

    def call_sharded_flat(self, method: str, items: Sequence[Any], *args: Any, **kwargs: Any) -> list[Any]:
        """`call_sharded` for methods returning lists: one flat list, in the order of `items`."""
        return [out for result in self.call_sharded(method, items, *args, **kwargs) for out in result]

    def shutdown(self) -> None:
        """Kill the workers and free their bundles."""
        for worker in self.workers:
            ray.kill(worker)
        remove_placement_group(self.placement_group)
