"""The Ray shell around RewardScorer: reward actors and scoring a batch across them with timeout and retry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayError

from contract.sharding import split_evenly
from reward_workers.registry import RewardInput
from reward_workers.scorer import TOTAL, RewardScorer

# The actor is the pure scorer as-is; the caller picks resources, e.g.
# RewardWorker.options(num_cpus=cfg.num_cpus_per_worker).remote(cfg).
RewardWorker = ray.remote(RewardScorer)


class RewardPoolError(RuntimeError):
    """A shard of a reward batch failed on two workers (first try and retry)."""


def _get(ref: ray.ObjectRef, deadline: float) -> tuple[list, dict] | RayError:
    try:
        return ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
    except RayError as err:  # actor died, reward raised, or the deadline passed
        try:
            ray.cancel(ref)
        except Exception:  # noqa: BLE001 - best effort; the task may be finished or not cancellable
            pass
        return err


def score_with_pool_timed(
    workers: list, samples: list[RewardInput], timeout_s: float, replace: Callable[[int], Any] | None = None
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Like `score_with_pool`, also returning summed per-reward seconds, "wall" seconds and "retries".

    With `replace` (rank -> a fresh worker, e.g. `ActorGroup.replace`), a failed shard's worker is replaced and
    the shard retried on the new one, so a killed reward actor does not stay dead in the pool.
    """
    if not workers:
        raise ValueError("score_with_pool needs at least one reward worker")
    started = time.monotonic()
    shards = [(s, e) for s, e in split_evenly(len(samples), len(workers)) if e > s]
    refs = [workers[i].score_timed.remote(samples[s:e]) for i, (s, e) in enumerate(shards)]
    deadline = time.monotonic() + timeout_s
    results = [_get(ref, deadline) for ref in refs]

    failed = [i for i, r in enumerate(results) if isinstance(r, RayError)]
    healthy = [i for i in range(len(shards)) if i not in failed] + list(range(len(shards), len(workers)))
    retries = {}
    for k, i in enumerate(failed):
        s, e = shards[i]
        if replace is not None:
            retries[i] = (i, replace(i).score_timed.remote(samples[s:e]))
            continue
        # Another worker: prefer one that just succeeded; with a single worker, the same one again.
        others = healthy or [j for j in range(len(workers)) if j != i] or [i]
        target = others[k % len(others)]
        retries[i] = (target, workers[target].score_timed.remote(samples[s:e]))
    retry_deadline = time.monotonic() + timeout_s
    for i, (target, ref) in retries.items():
        results[i] = _get(ref, retry_deadline)
        if isinstance(results[i], RayError):
            s, e = shards[i]
            raise RewardPoolError(
                f"reward shard {i} (samples {s}..{e - 1}) failed on worker {i} and on retry on worker {target}"
            ) from results[i]

    scores: list[dict[str, float]] = []
    timings: dict[str, float] = {}
    for shard_scores, shard_timings in results:
        scores.extend(shard_scores)
        for name, seconds in shard_timings.items():
            if name != TOTAL:
                timings[name] = timings.get(name, 0.0) + seconds
    timings["wall"] = time.monotonic() - started
    timings["retries"] = float(len(failed))
    return scores, timings


def score_with_pool(workers: list, samples: list[RewardInput], timeout_s: float) -> list[dict[str, float]]:
    """Score `samples` split evenly across reward actors, in input order; a failed shard is retried once
    on another worker, and a second failure raises RewardPoolError."""
    return score_with_pool_timed(workers, samples, timeout_s)[0]
