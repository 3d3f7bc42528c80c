"""Two model arms from two `logrl eval` reports on the same rows, compared with the paired bootstrap.

    python -m evaluation.paired docs/results/templates:sft-rule-teacher/fast \\
        docs/results/templates/domain-teacher:sft-domain-teacher/fast

Each side is REPORT_DIR:ARM/MODE (the folder holding predictions.jsonl). Rows are matched by id; the two reports
must hold the same ids with the same labels (the same split), else it refuses. Prints F1 and ROC-AUC of each side
with their intervals and the difference (second minus first): a difference whose interval holds 0 is a tie; where
both reports chose a validation threshold for the arm's scores (metrics.json), also F1 with each side called at its
own threshold and that paired difference (the comparison for fast-mode scores, whose verdict is not their best
use) with the rows both get wrong there and those only one does. When
both sides wrote rationales (reasoning mode), also the faithful share (every quote on the line it names, as
`logrl eval` counts it) over all rationales and over `anomalous` verdicts, each with its paired difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from evaluation.analysis import Scored, analyse, compare, compare_at_thresholds, interval_text
from evaluation.stats import bootstrap, paired_difference, positives, resamples, verdict_of

NOT_JUDGED = -1  # a row outside a faithfulness share (no rationale, or another verdict)


def faithful_codes(records: list[dict], verdict: str | None = None) -> np.ndarray:
    """Per row: 1 faithful, 0 not, NOT_JUDGED outside the share (as `evaluation.metrics.faithful_share` judges)."""
    codes = []
    for r in records:
        judged = r.get("well_formed") and (r.get("rationale") or "").strip() and verdict in (None, r.get("verdict"))
        cites = r.get("citations") or []
        codes.append(NOT_JUDGED if not judged else int(bool(cites) and all(c["grounded"] for c in cites)))
    return np.array(codes, dtype=np.int8)


def share(_: np.ndarray, codes: np.ndarray) -> float | None:
    judged = codes[codes != NOT_JUDGED]
    return float(judged.mean()) if len(judged) else None


def faithfulness(a: list[dict], b: list[dict], y: np.ndarray, draws: np.ndarray) -> dict | None:
    """Each side's faithful shares with intervals and the paired difference b - a; None unless both have rationales."""
    if not any("rationale" in r and r.get("rationale") for r in a) or not any(r.get("rationale") for r in b):
        return None
    out = {}
    for name, verdict in (("all", None), ("anomalous", "anomalous")):
        ca, cb = faithful_codes(a, verdict), faithful_codes(b, verdict)
        diff = paired_difference(y, cb, ca, share, draws)
        out[name] = {
            "first": bootstrap(y, ca, share, draws).to_dict(),
            "second": bootstrap(y, cb, share, draws).to_dict(),
            "judged": [int((ca != NOT_JUDGED).sum()), int((cb != NOT_JUDGED).sum())],
            "difference": diff.to_dict(),
            "verdict": verdict_of(diff),
        }
    return out


class Side(NamedTuple):
    """One side of a comparison: its name, its prediction records by row id, and the threshold its report chose
    on validation for its scores (None where it chose none)."""

    name: str
    rows: dict[str, dict]
    threshold: float | None = None


def load_side(spec: str) -> Side:
    """`REPORT_DIR:ARM/MODE` -> its name, prediction records and validation threshold (from the report's
    metrics.json, where it has one)."""
    folder, sep, arm_mode = spec.rpartition(":")
    arm, slash, mode = arm_mode.rpartition("/")
    if not sep or not slash or not arm or not mode:
        raise ValueError(f"{spec!r}: expected REPORT_DIR:ARM/MODE, e.g. docs/results/templates:sft/fast")
    path = Path(folder) / "predictions.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{spec!r}: no {path}")
    rows = {}
    with path.open() as f:
        for line in f:
            record = json.loads(line)
            if record.get("arm") == arm and record.get("mode") == mode:
                rows[record["id"]] = record
    if not rows:
        raise ValueError(f"{spec!r}: no predictions of arm {arm!r} in mode {mode!r} in {path}")
    metrics = Path(folder) / "metrics.json"
    scorers = (
        json.loads(metrics.read_text()).get("analysis", {}).get("all", {}).get("scorers", {})
        if metrics.is_file()
        else {}
    )
    return Side(f"{arm}/{mode} ({folder})", rows, scorers.get(arm_mode, {}).get("threshold"))


def paired(first: Side, second: Side, seed: int = 0) -> dict:
    """Each side's F1 / ROC-AUC with intervals and the paired difference second - first on their common rows; where
    both reports chose a validation threshold, also F1 with each side called at its own."""
    (name_a, a, threshold_a), (name_b, b, threshold_b) = first, second
    if set(a) != set(b):
        raise ValueError(f"the reports hold different rows ({len(a)} vs {len(b)}, {len(set(a) ^ set(b))} unmatched)")
    ids = sorted(a)
    labels = [a[i]["label"] for i in ids]
    if labels != [b[i]["label"] for i in ids]:
        raise ValueError("the same row ids carry different labels: not the same split")

    def scored(name: str, rows: dict[str, dict], threshold: float | None) -> Scored:
        scores = [rows[i].get("score") for i in ids]
        has_scores = any(s is not None for s in scores)
        return Scored(
            name,
            [rows[i].get("verdict") for i in ids],
            scores if has_scores else None,
            threshold if has_scores else None,
        )

    sa, sb = scored(name_a, a, threshold_a), scored(name_b, b, threshold_b)
    blocks = analyse([sa, sb], labels, seed=seed)
    draws = resamples(len(ids), seed)
    result = {
        "n": len(ids),
        "positives": blocks["positives"],
        "first": {"name": name_a, **blocks["scorers"][name_a]},
        "second": {"name": name_b, **blocks["scorers"][name_b]},
        "second_minus_first": compare(sb, sa, labels, draws),
        "faithful": faithfulness([a[i] for i in ids], [b[i] for i in ids], positives(labels), draws),
    }
    if sa.threshold is not None and sb.threshold is not None:
        result["second_minus_first_at_threshold"] = compare_at_thresholds(sb, sa, labels, draws)
    return result


def render(result: dict) -> str:
    lines = [f"n = {result['n']} rows, {result['positives']} anomalous"]
    for side in ("first", "second"):
        part = result[side]
        lines.append(
            f"{side}: {part['name']}: F1 {interval_text(part['f1_ci'])}, ROC-AUC {interval_text(part.get('roc_auc'))}"
        )
    diff = result["second_minus_first"]
    text = f"second - first: F1 {interval_text(diff['f1_difference'])} ({diff['f1']})"
    if "roc_auc_difference" in diff:
        text += f", ROC-AUC {interval_text(diff['roc_auc_difference'])} ({diff['roc_auc']})"
    lines.append(text)
    if at := result.get("second_minus_first_at_threshold"):
        lines.append(
            f"at the validation thresholds: first {interval_text(result['first']['f1_at_threshold'])}, second "
            f"{interval_text(result['second']['f1_at_threshold'])}; second - first F1 "
            f"{interval_text(at['f1_difference'])} ({at['f1']}); wrong: both {at['errors']['both']}, second only "
            f"{at['errors']['this_only']}, first only {at['errors']['baseline_only']} (better call on every row: F1 "
            f"{at['errors']['f1_either_right']:.3f})"
        )
    for name, part in (result.get("faithful") or {}).items():
        first, second = part["judged"]
        lines.append(
            f"faithful ({name} rationales; {first} / {second} judged): first {interval_text(part['first'])}, "
            f"second {interval_text(part['second'])}; second - first {interval_text(part['difference'])} "
            f"({part['verdict']})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", help="REPORT_DIR:ARM/MODE")
    parser.add_argument("second", help="REPORT_DIR:ARM/MODE")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        print(render(paired(load_side(args.first), load_side(args.second), args.seed)))
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
