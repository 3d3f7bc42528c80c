"""Scoring through real RewardWorker actors matches the in-process scorer, also when an actor dies."""

from __future__ import annotations

import os
import time

import pytest
from reward_samples import CONCISE, completion, sample

from cluster.environment import init_ray
from reward_workers.config import RewardConfig
from reward_workers.scorer import RewardScorer

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

SAMPLES = [
    sample(completion(CONCISE, "anomalous"), label="anomalous"),
    sample(completion("routine corrected errors", "normal"), label="normal"),
    sample(completion('L42 "disk on fire"', "anomalous"), label="normal"),
    sample("<think>x</think><answer>normal</answer><answer>anomalous</answer>", label="anomalous"),
    sample(completion(CONCISE * 5, "normal"), label="anomalous"),
]


@pytest.fixture(scope="module")
def ray_cluster():
    if ray.is_initialized():  # another module's cluster: use it, leave it running
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    init_ray(None, 4)  # closed as logrl's own cluster: every port on loopback, token auth
    yield
    ray.shutdown()


def _workers(cfg: RewardConfig, n: int) -> list:
    from reward_workers.worker import RewardWorker

    return [RewardWorker.options(num_cpus=cfg.num_cpus_per_worker).remote(cfg) for _ in range(n)]


def test_two_workers_match_the_pure_scorer(ray_cluster) -> None:
    from reward_workers.worker import score_columns_with_pool, score_with_pool, score_with_pool_timed

    cfg = RewardConfig()
    expected = RewardScorer(cfg).score(SAMPLES)
    workers = _workers(cfg, 2)
    assert score_with_pool(workers, SAMPLES, timeout_s=60) == expected
    scores, timings = score_with_pool_timed(workers, SAMPLES, timeout_s=60)
    assert scores == expected
    assert set(cfg.weights) <= set(timings) and timings["retries"] == 0.0
    # What the trainer reads: one array per reward over the samples in order, no per-sample dicts.
    columns, timings = score_columns_with_pool(workers, SAMPLES, timeout_s=60)
    assert list(columns) == list(expected[0]) and all(len(v) == len(SAMPLES) for v in columns.values())
    assert [{k: columns[k][i] for k in columns} for i in range(len(SAMPLES))] == expected
    assert set(cfg.weights) <= set(timings) and timings["retries"] == 0.0


def test_a_dead_worker_shard_is_retried_on_another(ray_cluster) -> None:
    from reward_workers.worker import score_with_pool_timed

    cfg = RewardConfig()
    workers = _workers(cfg, 2)
    ray.kill(workers[0])
    scores, timings = score_with_pool_timed(workers, SAMPLES, timeout_s=60)
    assert scores == RewardScorer(cfg).score(SAMPLES)
    assert timings["retries"] == 1.0


def test_all_workers_dead_raises(ray_cluster) -> None:
    from reward_workers.worker import RewardPoolError, score_with_pool

    workers = _workers(RewardConfig(), 1)
    ray.kill(workers[0])
    with pytest.raises(RewardPoolError, match="failed on worker 0 and on retry"):
        score_with_pool(workers, SAMPLES, timeout_s=30)


def killed_for_sure(actor, timeout_s: float = 30.0) -> None:
    """Kill an actor and return once calls to it fail (bounded)."""
    ray.kill(actor)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.timings.remote(), timeout=timeout_s)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.1)
    raise AssertionError(f"actor still answers {timeout_s:.0f} s after ray.kill")


def test_a_killed_actor_in_a_group_is_replaced_and_its_shard_redone(ray_cluster) -> None:
    from reward_workers.worker import RewardWorker, score_with_pool_timed
    from rl_actors.actor_group import ActorGroup

    cfg = RewardConfig()
    group = ActorGroup(RewardWorker, 1, num_cpus=0.1, name="reward", kwargs_for_rank=lambda rank: dict(cfg=cfg))
    try:
        dead = group.workers[0]
        killed_for_sure(dead)  # the only worker: without replacement the retry would hit the same dead actor
        scores, timings = score_with_pool_timed(group.workers, SAMPLES, timeout_s=60, replace=group.replace)
        assert scores == RewardScorer(cfg).score(SAMPLES) and timings["retries"] == 1.0
        assert group.workers[0] is not dead and group.replaced == 1
        assert score_with_pool_timed(group.workers, SAMPLES, timeout_s=60)[1]["retries"] == 0.0  # healthy again

        # Any group call: the dead rank is replaced, readied by `on_replace`, and its call runs again. (Killed for
        # sure: ray.kill is asynchronous, and a call that still got through would need no replacement.)
        killed_for_sure(group.workers[0])
        readied = []
        out = group.call_sharded("score", SAMPLES[:2], on_replace=readied.append)
        assert out == [RewardScorer(cfg).score(SAMPLES[:2])] and readied == [group.workers[0]] and group.replaced == 2
        killed_for_sure(group.workers[0])  # ray.kill is asynchronous: a call right after it may still get through
        with pytest.raises(ray.exceptions.RayActorError):  # without `on_replace` a death is the caller's to handle
            group.call("score", SAMPLES[:1])
    finally:
        group.shutdown()
