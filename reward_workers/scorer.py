"""RewardScorer: the weighted sum of the configured rewards over a batch, with per-component timing."""

from __future__ import annotations

import time

import numpy as np

from reward_workers.config import RewardConfig
from reward_workers.registry import REWARDS, RewardFn, RewardInput, get_reward, known_rewards

TOTAL = "total"


def score_rows(columns: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Score columns as one dict per sample ({"total": ..., "<reward>": ...}), in order."""
    names = list(columns)
    return [dict(zip(names, map(float, values))) for values in zip(*(columns[n].tolist() for n in names))]


class RewardScorer:
    """Scores batches with the rewards named in `cfg.weights`; pure and in-process (Ray wraps it in worker.py)."""

    def __init__(self, cfg: RewardConfig) -> None:
        known = known_rewards()
        unknown = [name for name in cfg.weights if name not in REWARDS]
        if unknown:
            raise KeyError(
                f"reward.weights names unknown reward(s) {', '.join(map(repr, unknown))}; "
                f"known rewards: {', '.join(known)}"
            )
        if TOTAL in cfg.weights:
            raise KeyError(f"{TOTAL!r} is reserved for the weighted sum and cannot be a reward name")
        self.cfg = cfg
        self._rewards: dict[str, RewardFn] = {name: get_reward(name) for name in cfg.weights}
        self._timings: dict[str, float] = {}

    @property
    def reward_names(self) -> list[str]:
        """The rewards this scorer runs, in config order."""
        return list(self._rewards)

    def score_columns_timed(self, samples: list[RewardInput]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Score a batch into columns: {"total": weighted sum, "<reward>": values}, one float64 array each, in input
        order; also the seconds spent per reward and in total."""
        start = time.perf_counter()
        columns: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        # Reward by reward (not sample by sample), so each component's time is one clean measurement.
        for name, fn in self._rewards.items():
            t0 = time.perf_counter()
            values = np.array([float(fn(sample, self.cfg)) for sample in samples], dtype=np.float64)
            timings[name] = time.perf_counter() - t0
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                raise ValueError(f"reward {name!r} returned a non-finite value for sample(s) {bad[:10].tolist()}")
            columns[name] = values
        total = np.zeros(len(samples), dtype=np.float64)
        for name in self._rewards:
            total += self.cfg.weights[name] * columns[name]
        timings[TOTAL] = time.perf_counter() - start
        self._timings = timings
        return {TOTAL: total, **columns}, dict(timings)

    def score_timed(self, samples: list[RewardInput]) -> tuple[list[dict[str, float]], dict[str, float]]:
        """Score a batch, one dict per sample; also return seconds spent per reward and in total for this batch."""
        columns, timings = self.score_columns_timed(samples)
        return score_rows(columns), timings

    def score(self, samples: list[RewardInput]) -> list[dict[str, float]]:
        """One dict per sample: {"total": weighted sum, "<reward>": value, ...}, in input order."""
        return self.score_timed(samples)[0]

    def timings(self) -> dict[str, float]:
        """Seconds per reward (and "total") spent in the last `score` call; empty before the first."""
        return dict(self._timings)
