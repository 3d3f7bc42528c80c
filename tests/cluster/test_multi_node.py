"""Several nodes, simulated on one machine (`ray.cluster_utils.Cluster`): where SPREAD puts a role's actors, and a
node lost mid-run whose reward actor is replaced on a node that is left."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ray


@pytest.fixture
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    from rl_actors.actor_group import forwarded_env

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
    workers = [nodes.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
    ray.init(address=nodes.address, runtime_env={"env_vars": forwarded_env()})
    nodes.wait_for_nodes()
    yield nodes, workers
    ray.shutdown()
    nodes.shutdown()


def _bundle_nodes(group) -> list[str]:
    from ray.util import placement_group_table

    return list(placement_group_table(group.placement_group)["bundles_to_node_id"].values())


def test_spread_roles_land_on_different_nodes_and_a_lost_nodes_reward_actor_is_replaced(cluster):
    import ray

    from reward_workers.config import RewardConfig
    from reward_workers.registry import RewardInput
    from reward_workers.worker import score_with_pool_timed
    from rl_actors.actor_group import ActorGroup
    from rl_actors.reward_actor import RewardWorker

    nodes, workers = cluster
    cfg = RewardConfig(weights={"format": 1.0, "answer": 1.0})
    group = ActorGroup(
        RewardWorker, 2, num_cpus=1, strategy="SPREAD", name="reward", kwargs_for_rank=lambda rank: dict(cfg=cfg)
    )
    try:
        placed = _bundle_nodes(group)
        assert len(set(placed)) == 2  # SPREAD: one bundle per node
        inputs = [RewardInput("p", "<think>t</think><answer>normal</answer>", "normal", "r")] * 4
        before, _ = score_with_pool_timed(group.workers, inputs, 60, replace=group.replace)
        lost = next(w for w in workers if w.node_id in placed)  # a node holding a reward actor
        nodes.remove_node(lost)
        after, timings = score_with_pool_timed(group.workers, inputs, 120, replace=group.replace)
        assert after == before and timings["retries"] >= 1 and group.replaced >= 1
        assert lost.node_id not in _bundle_nodes(group)  # Ray re-placed the lost bundle on a node that is left
        assert ray.get([w.timings.remote() for w in group.workers])  # every worker alive again
    finally:
        group.shutdown()
