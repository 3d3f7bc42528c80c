"""The Ray shell around RewardScorer: reward actors and scoring a batch across them with timeout and retry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
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


def _score_shards(
    workers: list, samples, method: str, timeout_s: float, replace: Callable[[int], Any] | None
) -> tuple[list[tuple[Any, dict[str, float]]], dict[str, float]]:
    """Call `method` on every worker with one contiguous shard of `samples` (a list or a `StepView`): each shard's
    (scores, timings) in order, and the pool's "wall" seconds and "retries". A failed shard is retried once: on a
    replacement worker with `replace` (rank -> a fresh worker), else on another worker."""
    if not workers:
        raise ValueError("score_with_pool needs at least one reward worker")
    started = time.monotonic()
    shards = [(s, e) for s, e in split_evenly(len(samples), len(workers)) if e > s]
    refs = [getattr(workers[i], method).remote(samples[s:e]) for i, (s, e) in enumerate(shards)]
    deadline = time.monotonic() + timeout_s
    results = [_get(ref, deadline) for ref in refs]

    failed = [i for i, r in enumerate(results) if isinstance(r, RayError)]
    healthy = [i for i in range(len(shards)) if i not in failed] + list(range(len(shards), len(workers)))
    retries = {}
    for k, i in enumerate(failed):
        s, e = shards[i]
        if replace is not None:
            retries[i] = (i, getattr(replace(i), method).remote(samples[s:e]))
            continue
        # Another worker: prefer one that just succeeded; with a single worker, the same one again.
        others = healthy or [j for j in range(len(workers)) if j != i] or [i]
        target = others[k % len(others)]
        retries[i] = (target, getattr(workers[target], method).remote(samples[s:e]))
    retry_deadline = time.monotonic() + timeout_s
    for i, (target, ref) in retries.items():
        results[i] = _get(ref, retry_deadline)
        if isinstance(results[i], RayError):
            s, e = shards[i]
            raise RewardPoolError(
                f"reward shard {i} (samples {s}..{e - 1}) failed on worker {i} and on retry on worker {target}"
            ) from results[i]
    return results, {"wall": time.monotonic() - started, "retries": float(len(failed))}


def _summed_timings(results: list[tuple[Any, dict[str, float]]], pool: dict[str, float]) -> dict[str, float]:
    timings: dict[str, float] = {}
    for _, shard_timings in results:
        for name, seconds in shard_timings.items():
            if name != TOTAL:
                timings[name] = timings.get(name, 0.0) + seconds
    return {**timings, **pool}


def score_with_pool_timed(
    workers: list, samples: list[RewardInput], timeout_s: float, replace: Callable[[int], Any] | None = None
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Like `score_with_pool`, also returning summed per-reward seconds, "wall" seconds and "retries".

    With `replace` (rank -> a fresh worker, e.g. `ActorGroup.replace`), a failed shard's worker is replaced and
    the shard retried on the new one, so a killed reward actor does not stay dead in the pool.
    """
    results, pool = _score_shards(workers, samples, "score_timed", timeout_s, replace)
    return [row for shard_scores, _ in results for row in shard_scores], _summed_timings(results, pool)


def score_columns_with_pool(
    workers: list, samples, timeout_s: float, replace: Callable[[int], Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """`score_with_pool_timed` returning columns: {"total": ..., "<reward>": ...}, one array each over `samples` in
    order (what the trainer reads: no per-sample Python objects cross to the driver)."""
    results, pool = _score_shards(workers, samples, "score_columns_timed", timeout_s, replace)
    names = list(results[0][0]) if results else [TOTAL]
    columns = {n: np.concatenate([shard[n] for shard, _ in results]) if results else np.zeros(0) for n in names}
    return columns, _summed_timings(results, pool)


def score_with_pool(workers: list, samples: list[RewardInput], timeout_s: float) -> list[dict[str, float]]:
    """Score `samples` split evenly across reward actors, in input order; a failed shard is retried once
    on another worker, and a second failure raises RewardPoolError."""
    return score_with_pool_timed(workers, samples, timeout_s)[0]
