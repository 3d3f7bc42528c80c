"""Placement groups with a deadline: what a group that never became ready lacks, said in the config's words."""

from __future__ import annotations

from collections.abc import Sequence


class PlacementTimeout(RuntimeError):
    """A role's placement group was not ready in time; the message names the resources the cluster lacks."""


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"


def _fits(bundle: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in bundle.items())


def placement_shortfall(
    bundles: Sequence[dict[str, float]], strategy: str, nodes: Sequence[dict[str, float]], available: dict[str, float]
) -> str:
    """Why `bundles` under `strategy` cannot be placed on alive `nodes` (each its total resources), or, when the
    cluster has room in principle, that other work holds it (`available`: what is free now)."""
    need: dict[str, float] = {}
    for bundle in bundles:
        for key, value in bundle.items():
            need[key] = need.get(key, 0.0) + value
    have = {key: sum(node.get(key, 0.0) for node in nodes) for key in need}
    short = [f"{k} {need[k]:g} in all, the cluster has {have[k]:g}" for k in sorted(need) if have[k] < need[k]]
    if short:
        return "it needs " + "; ".join(short)
    largest = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in need}
    for bundle in bundles:
        if not any(_fits(bundle, node) for node in nodes):
            return f"no node can hold one bundle {_fmt(bundle)} (the most any node has: {_fmt(largest)})"
    if strategy == "STRICT_PACK" and not any(_fits(need, node) for node in nodes):
        return f"STRICT_PACK puts every bundle on one node, and no node has {_fmt(need)}"
    if strategy == "STRICT_SPREAD":
        hosts = sum(any(_fits(bundle, node) for bundle in bundles) for node in nodes)
        if hosts < len(bundles):
            return f"STRICT_SPREAD needs {len(bundles)} nodes that each hold a bundle; the cluster has {hosts}"
    free = {k: available.get(k, 0.0) for k in need}
    return f"the cluster has the resources, but other work holds them (free now: {_fmt(free)})"


def wait_for_placement(group, bundles: Sequence[dict[str, float]], strategy: str, timeout_s: float | None, name: str):
    """Wait until `group` is ready; after `timeout_s` remove it and raise PlacementTimeout saying what is missing."""
    import ray
    from ray.util.placement_group import remove_placement_group

    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if ready:
        ray.get(ready[0])
        return group
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    reason = placement_shortfall(bundles, strategy, nodes, ray.available_resources())
    remove_placement_group(group)
    raise PlacementTimeout(
        f"{name}: {len(bundles)} bundle(s) of {_fmt(bundles[0])} ({strategy}) not placed after {timeout_s:g} s "
        f"(train.placement_timeout_s): {reason}. Lower {name}.num_workers / num_gpus_per_worker / "
        f"num_cpus_per_worker or add nodes."
    )
