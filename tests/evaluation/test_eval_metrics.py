"""Detection metrics on hand-computed confusions: anomalous is positive, a missing verdict is the wrong class."""

from __future__ import annotations

import pytest

from evaluation.metrics import Confusion, classification_scores, confusion, score_verdicts

A, N = "anomalous", "normal"


def test_confusion_counts_invalid_verdicts_as_wrong():
    labels = [A, A, A, A, N, N, N, N, N, N]
    verdicts = [A, A, N, None, A, None, N, N, N, N]
    # the None on an anomalous row is a missed anomaly, the None on a normal row a false alarm
    assert confusion(labels, verdicts) == Confusion(tp=2, fp=2, tn=4, fn=2, invalid=2)


def test_scores_by_hand():
    scores = classification_scores(Confusion(tp=2, fp=2, tn=4, fn=2, invalid=2))
    assert scores == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 0.6})
    scores = classification_scores(Confusion(tp=3, fp=1, tn=5, fn=3))
    assert scores["precision"] == pytest.approx(0.75)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert scores["accuracy"] == pytest.approx(8 / 12)


def test_all_invalid_scores_zero_and_nothing_is_dropped():
    m = score_verdicts([A, N, N], [None, None, "maybe"], elapsed_s=1.5)
    assert (m.n, m.positives, m.tp, m.fp, m.tn, m.fn, m.invalid) == (3, 1, 0, 2, 0, 1, 3)
    assert m.precision == m.recall == m.f1 == m.accuracy == 0.0
    assert m.samples_per_s == pytest.approx(2.0)
    assert m.latency_s == pytest.approx(0.5)


def test_undefined_ratios_are_zero_not_errors():
    m = score_verdicts([N, N], [N, N])
    assert (m.precision, m.recall, m.f1, m.accuracy) == (0.0, 0.0, 0.0, 1.0)
    assert m.samples_per_s is None and m.well_formed is None and m.faithful_share is None


def test_bad_inputs_fail():
    with pytest.raises(ValueError, match="labels but"):
        confusion([A], [A, N])
    with pytest.raises(ValueError, match="label must be"):
        confusion(["weird"], [A])
