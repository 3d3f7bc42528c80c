"""RewardScorer: weighting, unknown names, order, timings."""

from __future__ import annotations

import numpy as np
import pytest
from reward_samples import CONCISE, completion, sample

from contract.sharding import split_evenly
from reward_workers.config import RewardConfig
from reward_workers.registry import get_reward
from reward_workers.scorer import RewardScorer

SAMPLES = [
    sample(completion(CONCISE, "anomalous"), label="anomalous"),
    sample(completion("all routine", "normal"), label="anomalous"),
    sample("not even close", label="normal"),
]


def test_total_is_the_weighted_sum(cfg: RewardConfig) -> None:
    scores = RewardScorer(cfg).score(SAMPLES)
    assert len(scores) == len(SAMPLES)
    for s, row in zip(SAMPLES, scores, strict=True):
        assert set(row) == {"total", *cfg.weights}
        for name in cfg.weights:
            assert row[name] == get_reward(name)(s, cfg)
        assert row["total"] == pytest.approx(sum(w * row[n] for n, w in cfg.weights.items()))


def test_columns_hold_the_same_scores_as_rows(cfg: RewardConfig) -> None:
    columns, timings = RewardScorer(cfg).score_columns_timed(SAMPLES)
    assert list(columns) == ["total", *cfg.weights] and all(v.dtype == np.float64 for v in columns.values())
    assert [{k: float(v[i]) for k, v in columns.items()} for i in range(len(SAMPLES))] == RewardScorer(cfg).score(
        SAMPLES
    )
    empty, _ = RewardScorer(cfg).score_columns_timed([])
    assert all(len(v) == 0 for v in empty.values())


def test_weights_pick_the_rewards() -> None:
    cfg = RewardConfig(weights={"answer": 2.0})
    scores = RewardScorer(cfg).score(SAMPLES)
    assert [row["total"] for row in scores] == [2.0, -3.0, -3.0]
    assert all(set(row) == {"total", "answer"} for row in scores)


def test_unknown_reward_name_fails_at_construction() -> None:
    with pytest.raises(KeyError, match="'answr'.*known rewards: answer, brevity, format, grounding"):
        RewardScorer(RewardConfig(weights={"answer": 1.0, "answr": 1.0}))


def test_timings_per_component(cfg: RewardConfig) -> None:
    scorer = RewardScorer(cfg)
    assert scorer.timings() == {}
    scores, timings = scorer.score_timed(SAMPLES)
    assert set(timings) == {"total", *cfg.weights}
    assert all(t >= 0 for t in timings.values())
    assert timings["total"] >= sum(t for n, t in timings.items() if n != "total")
    assert scorer.timings() == timings
    assert scorer.score(SAMPLES) == scores


def test_empty_batch(cfg: RewardConfig) -> None:
    assert RewardScorer(cfg).score([]) == []


def test_split_evenly() -> None:
    assert split_evenly(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert split_evenly(2, 3) == [(0, 1), (1, 2), (2, 2)]
    assert split_evenly(0, 2) == [(0, 0), (0, 0)]
    with pytest.raises(ValueError):
        split_evenly(3, 0)
