"""N copies of one actor role placed over a placement group (rollout, reward and learner roles share it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from contract.actor_env import forwarded_env
from contract.sharding import split_evenly
from rl_actors.columns import StepView
from rl_actors.placement import wait_for_placement
from rl_actors.prompt_source import GroupBatch

Pending = tuple[list[Callable[[Any], Any]], list[Any]]  # per-rank calls (to redo one) and their object refs


def make_placement(
    roles: Sequence[tuple[float, float]],
    num_bundles: int,
    strategy: str,
    timeout_s: float | None = None,
    name: str = "group",
) -> PlacementGroup:
    """A ready placement group whose bundle i holds one actor of each role, given as (CPUs, GPUs): actors of
    different roles given the same bundle index share a node and, with at most one GPU in the bundle, that GPU.
    Not ready within `timeout_s`: a PlacementTimeout naming what the cluster lacks."""
    bundle = {"CPU": sum(cpus for cpus, _ in roles)}
    gpus = sum(gpus for _, gpus in roles)
    bundle |= {"GPU": gpus} if gpus else {}
    bundles = [dict(bundle) for _ in range(num_bundles)]
    return wait_for_placement(placement_group(bundles, strategy=strategy), bundles, strategy, timeout_s, name)


def _first_fetched(ref: Any) -> Any:
    """A call's result; of a call with several returns (`num_returns`), the first fetched and the others left as
    object references (data for other workers, which the driver never fetches)."""
    if isinstance(ref, list):
        return (ray.get(ref[0]), *ref[1:])
    return ray.get(ref)


class ActorGroup:
    """Spawn `num_workers` actors of a `@ray.remote` class, one per placement-group bundle: bundles of its own, or
    those of a `shared` group (colocation; the group's owner removes it)."""

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
        shared: PlacementGroup | None = None,
        placement_timeout_s: float | None = None,
    ):
        self.name = name
        self.owns_placement = shared is None
        self.placement_group = shared or make_placement(
            [(num_cpus, num_gpus)], num_workers, strategy, placement_timeout_s, name
        )
        # Where each rank runs: (placement group, bundle index). Ranks added by `grow` get a group of their own.
        self.slots: list[tuple[PlacementGroup, int]] = [(self.placement_group, rank) for rank in range(num_workers)]
        self._bundle = (num_cpus, num_gpus, strategy, placement_timeout_s)

        def spawn(rank: int) -> Any:
            group, index = self.slots[rank]
            return remote_cls.options(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                runtime_env=runtime_env or {"env_vars": forwarded_env()},
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index),
            ).remote(**kwargs_for_rank(rank))

        self._spawn = spawn
        self.workers = [spawn(rank) for rank in range(num_workers)]
        self.replaced = 0  # actors replaced after dying

    def __len__(self) -> int:
        return len(self.workers)

    def replace(self, rank: int) -> Any:
        """A fresh actor for `rank` in the same bundle, built as the first was (the old one is killed if alive)."""
        try:
            ray.kill(self.workers[rank], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone is what we expect
            pass
        self.workers[rank] = self._spawn(rank)
        self.replaced += 1
        print(f"[{self.name}] worker {rank} died: replaced", flush=True)
        return self.workers[rank]

    def grow(self, count: int) -> list[Any]:
        """Start `count` more workers (ranks len..len+count-1), each in a one-bundle placement group of its own
        (a placement group cannot grow); returns them. Not for a group on `shared` bundles (colocation)."""
        if not self.owns_placement:
            raise ValueError(f"{self.name}: workers on shared (colocated) bundles cannot be added")
        cpus, gpus, strategy, timeout_s = self._bundle
        added = []
        for _ in range(count):
            self.slots.append((make_placement([(cpus, gpus)], 1, strategy, timeout_s, self.name), 0))
            added.append(self._spawn(len(self.workers)))
            self.workers.append(added[-1])
        return added

    def shrink(self, count: int) -> None:
        """Stop the last `count` workers; those `grow` added free their bundles, the first ones' stay reserved."""
        if count >= len(self.workers):
            raise ValueError(f"{self.name}: cannot stop {count} of {len(self.workers)} workers (one must stay)")
        for _ in range(count):
            ray.kill(self.workers.pop())
            group, _ = self.slots.pop()
            if group is not self.placement_group:
                remove_placement_group(group)

    def start(self, calls: list[Callable[[Any], Any]]) -> Pending:
        """Run calls[rank](worker) on every worker (each returns an object ref) without waiting."""
        return calls, [call(worker) for call, worker in zip(calls, self.workers)]

    def call_async(self, method: str, *args: Any, **kwargs: Any) -> Pending:
        """Start one method with the same arguments on every worker; `wait` for the results."""
        return self.start([lambda w: getattr(w, method).remote(*args, **kwargs)] * len(self.workers))

    def wait(self, pending: Pending, on_replace: Callable[[Any], None] | None = None) -> list[Any]:
        """The results of started calls, in rank order. A worker that died is replaced, `on_replace(new)` readies
        it (e.g. loads the current adapter) and its call runs once more; without `on_replace`, a death raises."""
        calls, refs = pending
        results = []
        for rank, ref in enumerate(refs):
            try:
                results.append(_first_fetched(ref))
            except RayActorError:
                if on_replace is None:
                    raise
                worker = self.replace(rank)
                on_replace(worker)
                results.append(_first_fetched(calls[rank](worker)))
        return results

    def call(self, method: str, *args: Any, on_replace: Callable[[Any], None] | None = None, **kwargs: Any) -> list:
        """Call one method with the same arguments on every worker; wait for all results."""
        return self.wait(self.call_async(method, *args, **kwargs), on_replace)

    def start_sharded(self, method: str, items: Sequence[Any], *args: Any, **kwargs: Any) -> Pending:
        """Start one method on every worker, each with one contiguous shard of `items`; `wait` for the results."""
        bounds = split_evenly(len(items), len(self.workers))
        columnar = isinstance(items, (StepView, GroupBatch))  # sliced as themselves: references and arrays
        shards = [items[s:e] if columnar else list(items[s:e]) for s, e in bounds]
        calls = [lambda w, shard=shard: getattr(w, method).remote(shard, *args, **kwargs) for shard in shards]
        return self.start(calls)

    def call_sharded(
        self,
        method: str,
        items: Sequence[Any],
        *args: Any,
        on_replace: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Give each worker one contiguous shard of `items`; return the per-worker results in order."""
        return self.wait(self.start_sharded(method, items, *args, **kwargs), on_replace)

    def wait_flat(self, pending: Pending, on_replace: Callable[[Any], None] | None = None) -> list[Any]:
        """`wait` for methods returning lists: one flat list, in rank order (the order of sharded items)."""
        return [out for result in self.wait(pending, on_replace) for out in result]

    def call_sharded_flat(
        self,
        method: str,
        items: Sequence[Any],
        *args: Any,
        on_replace: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """`call_sharded` for methods returning lists: one flat list, in the order of `items`."""
        return self.wait_flat(self.start_sharded(method, items, *args, **kwargs), on_replace)

    def shutdown(self) -> None:
        """Kill the workers and free their bundles (if they are the group's own)."""
        for worker in self.workers:
            ray.kill(worker)
        for group in {id(g): g for g, _ in self.slots if g is not self.placement_group}.values():
            remove_placement_group(group)
        if self.owns_placement:
            remove_placement_group(self.placement_group)
