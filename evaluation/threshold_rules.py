"""Where in the validation gap a fast arm's threshold goes: eval's `edge` rule against `midpoint`, on reports that
kept the validation scores their thresholds were chosen on (validation.jsonl).

    python -m evaluation.threshold_rules "n200=docs/results/.../n200" ... --out docs/results/thresholds/rules.md

For each report and arm: the threshold each rule picks on the validation scores (the same validation calls), the
test F1 at it with its bootstrap 95% interval, and the paired difference midpoint - edge (a tie when its interval
holds 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.analysis import interval_text
from evaluation.report import VALIDATION_FILE, records_by_arm, report_table_command
from evaluation.stats import (
    THRESHOLD_RULES,
    best_threshold,
    bootstrap,
    called_at,
    f1_of,
    filled,
    paired_difference,
    positives,
    resamples,
    verdict_of,
)

HEADER = (
    "| report | arm | validation rows (anomalous) | edge t | F1 at edge | midpoint t | F1 at midpoint | "
    "midpoint - edge |\n|---|---|---|---|---|---|---|---|"
)


def compare_rules(folder: Path) -> list[dict]:
    """Per arm with validation scores: each rule's threshold and test F1, and the paired difference."""
    tests = records_by_arm(folder / "predictions.jsonl")
    out = []
    for name, held in records_by_arm(folder / VALIDATION_FILE).items():
        rows = tests[name]
        y, s = positives([r["label"] for r in rows]), filled([r["score"] for r in rows])
        draws = resamples(len(rows))
        held_labels, held_scores = [r["label"] for r in held], [r["score"] for r in held]
        cuts = {rule: best_threshold(held_labels, held_scores, rule) for rule in THRESHOLD_RULES}
        said = {rule: called_at(s, t) for rule, t in cuts.items()}
        difference = paired_difference(y, said["midpoint"], said["edge"], f1_of, draws)
        out.append(
            {
                "arm": name,
                "validation": (len(held), int(positives(held_labels).sum())),
                "thresholds": cuts,
                "f1": {rule: bootstrap(y, said[rule], f1_of, draws) for rule in cuts},
                "difference": difference,
                "verdict": verdict_of(difference),
            }
        )
    return out


def table(reports: list[tuple[str, Path]]) -> str:
    """The markdown table, then how often each rule came out ahead."""
    lines, differences = [HEADER], []
    for name, folder in reports:
        for item in compare_rules(folder):
            n, anomalous = item["validation"]
            lines.append(
                f"| {name} | {item['arm']} | {n} ({anomalous}) | {item['thresholds']['edge']:.3g} | "
                f"{interval_text(item['f1']['edge'])} | {item['thresholds']['midpoint']:.3g} | "
                f"{interval_text(item['f1']['midpoint'])} | {item['verdict']} "
                f"({interval_text(item['difference'])}) |"
            )
            differences.append(item["difference"].value)
    if differences:
        values = np.array(differences)
        lines += [
            "",
            f"midpoint - edge over {len(values)} arms: mean {values.mean():+.3f}; higher on {(values > 0).sum()}, "
            f"lower on {(values < 0).sum()}, equal on {(values == 0).sum()}.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return report_table_command(__doc__.split("\n")[0], VALIDATION_FILE, table, argv)


if __name__ == "__main__":
    raise SystemExit(main())
