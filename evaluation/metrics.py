"""Detection and faithfulness metrics over predictions; anomalous is the positive class, no verdict is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from contract.completion_format import FAST_MODE
from evaluation.predictions import Prediction

POSITIVE, NEGATIVE = "anomalous", "normal"


@dataclass(frozen=True)
class Confusion:
    """Confusion counts; `invalid` (no verdict) rows are also counted in fn (anomalous) or fp (normal)."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    invalid: int = 0


@dataclass(frozen=True)
class ArmMetrics:
    """One arm's (or baseline's) scores; None means not applicable (e.g. faithfulness of a baseline)."""

    n: int
    positives: int
    tp: int
    fp: int
    tn: int
    fn: int
    invalid: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    well_formed: float | None = None
    faithful_share: float | None = None
    rationales: int = 0  # denominator of faithful_share
    faithful_anomalous: float | None = None  # faithful_share among `anomalous` verdicts only
    anomalous_rationales: int = 0  # its denominator
    evidence_recall: float | None = None
    evidence_rows: int = 0  # denominator of evidence_recall: true positives with an anomaly line shown
    samples_per_s: float | None = None
    latency_s: float | None = None  # batch wall time / n

    def to_dict(self) -> dict:
        return asdict(self)


def confusion(labels: Sequence[str], verdicts: Sequence[str | None]) -> Confusion:
    """Count outcomes; a None verdict is the wrong class (a missed anomaly, or a false alarm on a normal row)."""
    if len(labels) != len(verdicts):
        raise ValueError(f"{len(labels)} labels but {len(verdicts)} verdicts")
    tp = fp = tn = fn = invalid = 0
    for label, verdict in zip(labels, verdicts):
        if label not in (POSITIVE, NEGATIVE):
            raise ValueError(f"label must be {POSITIVE!r} or {NEGATIVE!r}, got {label!r}")
        valid = verdict in (POSITIVE, NEGATIVE)
        invalid += not valid
        says_anomalous = verdict == POSITIVE if valid else label == NEGATIVE  # no verdict: the wrong class
        if label == POSITIVE:
            tp += says_anomalous
            fn += not says_anomalous
        else:
            fp += says_anomalous
            tn += not says_anomalous
    return Confusion(tp, fp, tn, fn, invalid)


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def classification_scores(c: Confusion) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of the anomalous class (0.0 where a denominator is 0)."""
    precision, recall = _ratio(c.tp, c.tp + c.fp), _ratio(c.tp, c.tp + c.fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": _ratio(c.tp + c.tn, c.tp + c.fp + c.tn + c.fn),
    }


def faithful_share(predictions: Sequence[Prediction], verdict: str | None = None) -> tuple[float | None, int]:
    """Among well-formed completions with a rationale (and this verdict, if given): share citing >= 1 line with
    every citation grounded."""
    judged = [p for p in predictions if p.well_formed and p.rationale.strip() and verdict in (None, p.verdict)]
    faithful = sum(bool(p.citations) and all(c.grounded for c in p.citations) for p in judged)
    return (faithful / len(judged) if judged else None), len(judged)


def evidence_recall(predictions: Sequence[Prediction]) -> tuple[float | None, int]:
    """Among true positives whose prompt shows an anomaly line: share citing one of them with a grounded quote.

    Not judged: rows with no known anomaly lines, or whose anomaly lines the prompt leaves out (nothing to
    cite), and fast-mode predictions (that mode stops at `</answer>`, before any rationale).
    """
    judged = [
        p
        for p in predictions
        if p.label == POSITIVE and p.verdict == POSITIVE and p.anomaly_lines_shown and p.mode != FAST_MODE
    ]
    found = sum(any(c.grounded and c.carries_anomaly for c in p.citations) for p in judged)
    return (found / len(judged) if judged else None), len(judged)


def _speed(n: int, elapsed_s: float | None) -> dict[str, float | None]:
    if elapsed_s is None or n == 0:
        return {"samples_per_s": None, "latency_s": None}
    return {"samples_per_s": n / elapsed_s if elapsed_s > 0 else None, "latency_s": elapsed_s / n}


def score_verdicts(labels: Sequence[str], verdicts: Sequence[str | None], elapsed_s: float | None = None) -> ArmMetrics:
    """Scores of bare verdicts (baselines): no well-formedness or faithfulness."""
    c = confusion(labels, verdicts)
    positives = sum(label == POSITIVE for label in labels)
    return ArmMetrics(len(labels), positives, **asdict(c), **classification_scores(c), **_speed(len(labels), elapsed_s))


def score_predictions(predictions: Sequence[Prediction], elapsed_s: float | None = None) -> ArmMetrics:
    """Scores of a model arm: detection, share well formed, faithfulness, throughput."""
    base = score_verdicts([p.label for p in predictions], [p.verdict for p in predictions], elapsed_s)
    faithful, rationales = faithful_share(predictions)
    faithful_anomalous, anomalous_rationales = faithful_share(predictions, POSITIVE)
    recall, evidence_rows = evidence_recall(predictions)
    well_formed = sum(p.well_formed for p in predictions) / len(predictions) if predictions else None
    return ArmMetrics(
        **(
            asdict(base)
            | {
                "well_formed": well_formed,
                "faithful_share": faithful,
                "rationales": rationales,
                "faithful_anomalous": faithful_anomalous,
                "anomalous_rationales": anomalous_rationales,
                "evidence_recall": recall,
                "evidence_rows": evidence_rows,
            }
        )
    )
