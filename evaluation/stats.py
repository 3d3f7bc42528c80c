"""Scores and uncertainty: ROC/PR-AUC, F1 at a threshold chosen on validation, bootstrap 95% intervals, ties."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 1000
NO_SCORE = 0.5  # a row without a score (no parsable answer token) counts as a coin flip, never as a sure call


def positives(labels: Sequence[str]) -> np.ndarray:
    """1 for anomalous, 0 for normal."""
    return np.array([label == "anomalous" for label in labels], dtype=np.int8)


def filled(scores: Sequence[float | None]) -> np.ndarray:
    """Scores as floats, a missing score as NO_SCORE."""
    return np.array([NO_SCORE if s is None else float(s) for s in scores], dtype=float)


def called_at(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 where a (filled) score is at or above the threshold: the row is called anomalous."""
    return (scores >= threshold).astype(np.int8)


def f1_of(y: np.ndarray, said: np.ndarray) -> float:
    """F1 of the anomalous class (0 where undefined)."""
    tp = int(np.sum((said == 1) & (y == 1)))
    fp = int(np.sum((said == 1) & (y == 0)))
    fn = int(np.sum((said == 0) & (y == 1)))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None with one class only."""
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if not n_pos or not n_neg:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # ties share their average rank
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision (area under the precision-recall curve, step-wise); None without a positive."""
    n_pos = int(y.sum())
    if not n_pos:
        return None
    order = np.argsort(-scores, kind="mergesort")
    y_sorted, s_sorted = y[order], scores[order]
    # One threshold per distinct score: tied rows enter together.
    last_of_tie = np.r_[np.diff(s_sorted) != 0, True]
    tp = np.cumsum(y_sorted)[last_of_tie]
    seen = np.arange(1, len(y) + 1)[last_of_tie]
    precision, recall = tp / seen, tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


THRESHOLD_RULES = ("edge", "midpoint")


def best_threshold(labels: Sequence[str], scores: Sequence[float | None], rule: str = "edge") -> float:
    """The score threshold (anomalous when score >= it) with the best F1 on these (validation) rows; 0.5 when
    they hold no anomaly. Ties go to the higher threshold (fewer alarms). `rule` says where in the gap the rows
    leave the cut goes: `edge` at the lowest score still called anomalous (eval's rule); `midpoint` halfway down to
    the next lower score, the same calls on these rows with a margin on both sides (0 below the lowest)."""
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    y, s = positives(labels), filled(scores)
    if not y.any():
        return 0.5
    best, best_f1 = 0.5, -1.0
    for candidate in sorted(set(s.tolist()), reverse=True):
        f1 = f1_of(y, called_at(s, candidate))
        if f1 > best_f1:
            best, best_f1 = candidate, f1
    if rule == "midpoint":
        below = s[s < best]
        return float((best + below.max()) / 2) if below.size else float(best / 2)
    return float(best)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap 95% percentile interval."""

    value: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


Metric = Callable[[np.ndarray, np.ndarray], float | None]


def resamples(n: int, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> np.ndarray:
    """Row indices of each bootstrap resample (the same for every arm, so comparisons are paired)."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def bootstrap(y: np.ndarray, values: np.ndarray, metric: Metric, draws: np.ndarray) -> Interval:
    """`metric(y, values)` and its 95% percentile interval over the resamples `draws`."""
    point = metric(y, values)
    stats = [m for idx in draws if (m := metric(y[idx], values[idx])) is not None]
    if point is None or not stats:
        return Interval(point, None, None)
    low, high = np.percentile(stats, [2.5, 97.5])
    return Interval(point, float(low), float(high))


def paired_difference(y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: Metric, draws: np.ndarray) -> Interval:
    """metric(a) - metric(b) on the same rows, with a paired bootstrap interval."""

    def diff(yy: np.ndarray, both: np.ndarray) -> float | None:
        first, second = metric(yy, both[:, 0]), metric(yy, both[:, 1])
        return None if first is None or second is None else first - second

    return bootstrap(y, np.stack([a, b], axis=1), diff, draws)


def verdict_of(difference: Interval) -> str:
    """win / loss when the paired interval excludes 0, else tie."""
    if difference.low is None or difference.high is None:
        return "n/a"
    if difference.low > 0:
        return "win"
    if difference.high < 0:
        return "loss"
    return "tie"
