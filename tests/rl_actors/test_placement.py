"""A placement group that cannot be placed fails after train.placement_timeout_s, saying what the cluster lacks."""

from __future__ import annotations

import pytest

from cluster.environment import init_ray
from rl_actors.placement import placement_shortfall

NODES = [{"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]


def test_a_resource_the_cluster_lacks_in_all_is_named_with_both_numbers():
    reason = placement_shortfall([{"CPU": 4, "GPU": 1}] * 3, "PACK", NODES, {})
    assert reason == "it needs GPU 3 in all, the cluster has 2"


def test_a_bundle_too_big_for_every_node():
    reason = placement_shortfall([{"CPU": 2, "GPU": 2}], "PACK", NODES, {})
    assert reason.startswith("no node can hold one bundle {CPU: 2, GPU: 2}") and "GPU: 1" in reason


def test_strict_strategies_name_their_rule():
    assert "STRICT_PACK" in placement_shortfall([{"CPU": 6}] * 2, "STRICT_PACK", NODES, {})
    three = [*NODES, {"CPU": 1.0}]
    assert "STRICT_SPREAD needs 3 nodes" in placement_shortfall(
        [{"CPU": 2, "GPU": 0.5}] * 3, "STRICT_SPREAD", three, {}
    )


def test_room_held_by_other_work_says_what_is_free():
    reason = placement_shortfall([{"CPU": 4, "GPU": 1}], "PACK", NODES, {"CPU": 16.0})
    assert reason == "the cluster has the resources, but other work holds them (free now: {CPU: 16, GPU: 0})"


@pytest.mark.ray
def test_a_gpu_role_on_a_cpu_cluster_fails_in_time_naming_the_gpus():
    import ray

    from rl_actors.actor_group import make_placement
    from rl_actors.placement import PlacementTimeout

    init_ray(None, 2)  # closed: every port on loopback, token auth
    try:
        with pytest.raises(PlacementTimeout) as err:
            make_placement([(1, 1)], 2, "SPREAD", timeout_s=1, name="rollout")
        message = str(err.value)
        assert message.startswith("rollout: 2 bundle(s) of {CPU: 1, GPU: 1} (SPREAD) not placed after 1 s")
        assert "it needs GPU 2 in all, the cluster has 0" in message and "rollout.num_workers" in message
        assert make_placement([(1, 0)], 2, "PACK", timeout_s=30, name="reward")  # the refused group was removed
    finally:
        ray.shutdown()
