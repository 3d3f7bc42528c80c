"""AUCs against scikit-learn, thresholds chosen on validation, bootstrap intervals and paired ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from evaluation.stats import (
    best_threshold,
    bootstrap,
    f1_of,
    filled,
    paired_difference,
    positives,
    pr_auc,
    resamples,
    roc_auc,
    verdict_of,
)


def test_aucs_match_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).astype(np.int8)
    scores = np.round(rng.random(300) * 0.5 + 0.4 * y, 1)  # coarse: many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores))
    assert pr_auc(y, scores) == pytest.approx(average_precision_score(y, scores))
    assert roc_auc(np.zeros(5, np.int8), scores[:5]) is None and pr_auc(np.zeros(5, np.int8), scores[:5]) is None


def test_threshold_is_the_best_f1_on_validation_and_missing_scores_are_coin_flips():
    labels = ["anomalous", "anomalous", "normal", "normal", "normal"]
    assert best_threshold(labels, [0.9, 0.6, 0.7, 0.2, None]) == 0.6
    assert best_threshold(["normal"], [0.3]) == 0.5
    assert filled([None, 0.25]).tolist() == [0.5, 0.25]
    assert f1_of(positives(labels), np.array([1, 0, 1, 0, 0])) == pytest.approx(0.5)


def test_bootstrap_interval_holds_the_point_and_paired_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200).astype(np.int8)
    good = np.where(rng.random(200) < 0.9, y, 1 - y)
    almost = good.copy()
    almost[np.flatnonzero(almost != y)[:1]] = y[np.flatnonzero(almost != y)[:1]]  # one more right
    bad = rng.integers(0, 2, 200)
    draws = resamples(200, seed=0, samples=300)
    interval = bootstrap(y, good, f1_of, draws)
    assert interval.low < interval.value < interval.high
    assert verdict_of(paired_difference(y, good, bad, f1_of, draws)) == "win"
    assert verdict_of(paired_difference(y, bad, good, f1_of, draws)) == "loss"
    assert verdict_of(paired_difference(y, almost, good, f1_of, draws)) == "tie"  # one row is inside the noise
