"""Per arm and baseline: F1 and AUCs with bootstrap intervals, F1 at the validation threshold (and the best any
threshold reaches on the evaluated rows: a bound), the unseen-template slice, and paired win / tie / loss against
the best baseline: on verdicts, and at the validation thresholds (with the rows both get wrong, and those only one
does)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.stats import (
    Interval,
    best_threshold,
    bootstrap,
    called_at,
    f1_of,
    filled,
    paired_difference,
    positives,
    pr_auc,
    resamples,
    roc_auc,
    verdict_of,
)


@dataclass
class Scored:
    """One arm (in one mode) or baseline on the evaluated rows: verdicts, scores (None where there are none), and
    the threshold chosen for its scores on validation (None: not chosen)."""

    name: str
    verdicts: Sequence[str | None]
    scores: Sequence[float | None] | None
    threshold: float | None = None
    baseline: bool = False


def _said(verdicts: Sequence[str | None], labels: Sequence[str]) -> np.ndarray:
    """1 where the verdict is anomalous; a missing verdict is the wrong class (a miss or a false alarm)."""
    return np.array(
        [(v == "anomalous") if v in ("normal", "anomalous") else (y == "normal") for v, y in zip(verdicts, labels)],
        dtype=np.int8,
    )


def _decided(scored: Scored, labels: Sequence[str]) -> np.ndarray:
    """1 where the scorer calls the row anomalous at its validation threshold; its verdicts where it has none."""
    if scored.threshold is None or scored.scores is None or all(s is None for s in scored.scores):
        return _said(scored.verdicts, labels)
    return called_at(filled(scored.scores), scored.threshold)


def block(scored: Scored, labels: Sequence[str], draws: np.ndarray) -> dict:
    """F1 of the verdicts, ROC-AUC and PR-AUC of the scores, F1 at the validation threshold, each with its interval."""
    y = positives(labels)
    out: dict = {"f1_ci": bootstrap(y, _said(scored.verdicts, labels), f1_of, draws).to_dict()}
    has_scores = scored.scores is not None and any(s is not None for s in scored.scores)
    if has_scores:
        s = filled(scored.scores)
        out["roc_auc"] = bootstrap(y, s, roc_auc, draws).to_dict()
        out["pr_auc"] = bootstrap(y, s, pr_auc, draws).to_dict()
        out["missing_scores"] = sum(v is None for v in scored.scores)
        # The best F1 any cut of these scores reaches on these rows: it reads their labels, so it is a bound on what
        # choosing a threshold could do (never a result), telling a ranking limit from a threshold that did not carry.
        best = best_threshold(labels, scored.scores)
        out["f1_any_threshold"] = {"value": f1_of(y, called_at(s, best)), "threshold": best}
        if scored.threshold is not None:
            out["threshold"] = scored.threshold
            out["f1_at_threshold"] = bootstrap(y, _decided(scored, labels), f1_of, draws).to_dict()
    return out


def best_baseline(blocks: Mapping[str, dict], baselines: Sequence[str], thresholded: bool = False) -> str | None:
    """The baseline with the highest F1 of its verdicts, or (`thresholded`) at its validation threshold."""
    value = (lambda b: curve_f1(b)["value"]) if thresholded else (lambda b: b["f1_ci"]["value"])
    ranked = [(value(blocks[name]) or 0.0, name) for name in baselines if name in blocks]
    return max(ranked)[1] if ranked else None


def best_ranking_baseline(blocks: Mapping[str, dict], baselines: Sequence[str]) -> str | None:
    """The baseline with the highest ROC-AUC of its scores (None when no baseline has one)."""
    ranked = [
        (blocks[name]["roc_auc"]["value"], name)
        for name in baselines
        if name in blocks and (blocks[name].get("roc_auc") or {}).get("value") is not None
    ]
    return max(ranked)[1] if ranked else None


def compare_ranking(a: Scored, b: Scored, labels: Sequence[str], draws: np.ndarray) -> dict:
    """Paired bootstrap difference a - b in ROC-AUC (both scored)."""
    auc = paired_difference(positives(labels), filled(a.scores), filled(b.scores), roc_auc, draws)
    return {"against": b.name, "roc_auc_difference": auc.to_dict(), "roc_auc": verdict_of(auc)}


def compare(a: Scored, b: Scored, labels: Sequence[str], draws: np.ndarray) -> dict:
    """Paired bootstrap differences a - b in F1 (verdicts) and, when both have scores, ROC-AUC."""
    y = positives(labels)
    f1 = paired_difference(y, _said(a.verdicts, labels), _said(b.verdicts, labels), f1_of, draws)
    out = {"against": b.name, "f1_difference": f1.to_dict(), "f1": verdict_of(f1)}
    if a.scores is not None and b.scores is not None:
        out |= {key: value for key, value in compare_ranking(a, b, labels, draws).items() if key != "against"}
    return out


def error_overlap(a_calls: np.ndarray, b_calls: np.ndarray, y: np.ndarray) -> dict:
    """Rows both callers get wrong (split into false alarms and misses), and rows only one does: what no choice or
    blend of the two could fix, against what a referee between them could; `f1_either_right` is F1 with every row
    given the better of the two calls, a bound (on these rows) no blend or referee of the two passes."""
    wrong_a, wrong_b = a_calls != y, b_calls != y
    both = wrong_a & wrong_b
    return {
        "f1_either_right": f1_of(y, np.where(both, 1 - y, y)),
        "both": int(both.sum()),
        "both_false_alarms": int((both & (y == 0)).sum()),
        "both_misses": int((both & (y == 1)).sum()),
        "this_only": int((wrong_a & ~wrong_b).sum()),
        "baseline_only": int((wrong_b & ~wrong_a).sum()),
    }


def compare_at_thresholds(a: Scored, b: Scored, labels: Sequence[str], draws: np.ndarray) -> dict:
    """Paired bootstrap difference a - b in F1, each called at its own validation threshold (b's verdicts where it
    has none): the comparison for a score whose verdict is not its best use; with the errors they share."""
    y = positives(labels)
    a_calls, b_calls = _decided(a, labels), _decided(b, labels)
    f1 = paired_difference(y, a_calls, b_calls, f1_of, draws)
    errors = error_overlap(a_calls, b_calls, y)
    return {"against": b.name, "f1_difference": f1.to_dict(), "f1": verdict_of(f1), "errors": errors}


def analyse(scored: Sequence[Scored], labels: Sequence[str], mask: Sequence[bool] | None = None, seed: int = 0) -> dict:
    """Every scorer's block on the rows selected by `mask` (all by default), and each arm against the best
    baseline (by F1, by F1 at thresholds, by ROC-AUC). Resamples are shared, so comparisons are paired."""
    keep = np.ones(len(labels), bool) if mask is None else np.asarray(mask, bool)
    idx = np.flatnonzero(keep)
    sub_labels = [labels[i] for i in idx]

    def subset(item: Scored) -> Scored:
        scores = None if item.scores is None else [item.scores[i] for i in idx]
        return Scored(item.name, [item.verdicts[i] for i in idx], scores, item.threshold, item.baseline)

    items = [subset(item) for item in scored]
    out = {"n": len(idx), "positives": int(positives(sub_labels).sum()) if len(idx) else 0, "scorers": {}}
    if not len(idx):
        return out
    draws = resamples(len(idx), seed)
    blocks = {item.name: block(item, sub_labels, draws) for item in items}
    baselines = [item.name for item in items if item.baseline]
    best, best_thresholded = best_baseline(blocks, baselines), best_baseline(blocks, baselines, thresholded=True)
    best_ranking = best_ranking_baseline(blocks, baselines)
    by_name = {item.name: item for item in items}
    for item in items:
        if not item.baseline and best_ranking is not None and "roc_auc" in blocks[item.name]:
            blocks[item.name]["vs_best_ranking_baseline"] = compare_ranking(
                item, by_name[best_ranking], sub_labels, draws
            )
        if not item.baseline and best is not None:
            blocks[item.name]["vs_best_baseline"] = compare(item, by_name[best], sub_labels, draws)
        if not item.baseline and best_thresholded is not None and "f1_at_threshold" in blocks[item.name]:
            blocks[item.name]["vs_best_baseline_at_threshold"] = compare_at_thresholds(
                item, by_name[best_thresholded], sub_labels, draws
            )
    out["scorers"] = blocks
    out["best_baseline"] = best
    if best_thresholded is not None:
        out["best_baseline_at_threshold"] = best_thresholded
    if best_ranking is not None:
        out["best_ranking_baseline"] = best_ranking
    return out


def curve_f1(block: Mapping) -> dict | None:
    """A scorer's label-curve value: F1 at its validation threshold, or of its verdicts where it has no threshold."""
    return block.get("f1_at_threshold") or block.get("f1_ci")


def interval_text(interval: Mapping | Interval | None) -> str:
    """`0.812 [0.74, 0.87]`, or n/a."""
    if interval is None:
        return "n/a"
    data = interval.to_dict() if isinstance(interval, Interval) else interval
    if data.get("value") is None:
        return "n/a"
    if data.get("low") is None:
        return f"{data['value']:.3f}"
    return f"{data['value']:.3f} [{data['low']:.2f}, {data['high']:.2f}]"
