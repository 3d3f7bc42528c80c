"""Where the LLM wins and where it loses: one row per (protocol, slice) from `logrl eval` reports.

    python -m evaluation.wins "template task=docs/results/templates" "BGL -> Spirit=docs/results/cross-bgl-spirit" \\
        --out docs/results/wins.md

For each report and slice (all rows, rows showing a template unseen in training): the best model arm and the best
baseline by F1, each F1 and ROC-AUC with its bootstrap 95% interval, and the paired verdict (a difference whose
interval holds 0 is a tie); then the arm best at its validation threshold against the baseline best at its own,
with the rows both get wrong and those only one does (n/a where no arm has a threshold, or in a report written
before this comparison: `logrl eval --reanalyse` adds it); last, the arm that ranks best (ROC-AUC) against the
baseline that ranks best, paired.
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.analysis import curve_f1, interval_text
from evaluation.report import report_table_command

SLICES = (("all", "all rows"), ("unseen_templates", "unseen templates"))


def _best(scorers: dict, baseline: bool) -> str | None:
    names = [n for n in scorers if n.startswith("baseline: ") == baseline]
    return max(names, key=lambda n: scorers[n]["f1_ci"]["value"] or 0.0, default=None)


def _at_thresholds(scorers: dict, model: str) -> str:
    """The arm best at its validation threshold against the baseline best at its own, paired, and the rows they get
    wrong: `0.543 vs domain_cues 0.547: **tie** (-0.004 [-0.09, 0.09]); wrong: both 30, LLM only 12, baseline only
    11`, the arm named when it is not `model`."""
    arms = [n for n in scorers if "vs_best_baseline_at_threshold" in scorers[n]]
    if not arms:
        return "n/a"
    best = max(arms, key=lambda n: curve_f1(scorers[n])["value"] or 0.0)
    versus = scorers[best]["vs_best_baseline_at_threshold"]
    mine, theirs = curve_f1(scorers[best])["value"], curve_f1(scorers[versus["against"]])["value"]
    text = (
        ("" if best == model else f"{best} ")
        + f"{mine:.3f} vs {versus['against'].removeprefix('baseline: ')} {theirs:.3f}: **{versus['f1']}** "
        f"({interval_text(versus['f1_difference'])})"
    )
    if e := versus.get("errors"):
        text += (
            f"; wrong: both {e['both']}, LLM only {e['this_only']}, baseline only {e['baseline_only']} "
            f"(better call on every row: F1 {e['f1_either_right']:.3f})"
        )
    return text


def _ranking(scorers: dict) -> str:
    """The arm with the highest ROC-AUC against the baseline with the highest, paired:
    `sft/fast 0.904 vs domain_cues 0.803: **win** (0.101 [0.05, 0.16])` (n/a in a report written before it)."""
    arms = [n for n in scorers if "vs_best_ranking_baseline" in scorers[n]]
    if not arms:
        return "n/a"
    best = max(arms, key=lambda n: scorers[n]["roc_auc"]["value"] or 0.0)
    versus = scorers[best]["vs_best_ranking_baseline"]
    mine, theirs = scorers[best]["roc_auc"]["value"], scorers[versus["against"]]["roc_auc"]["value"]
    return (
        f"{best} {mine:.3f} vs {versus['against'].removeprefix('baseline: ')} {theirs:.3f}: **{versus['roc_auc']}** "
        f"({interval_text(versus['roc_auc_difference'])})"
    )


def rows_of(name: str, metrics: dict) -> list[str]:
    """Markdown rows of one report."""
    out = []
    for key, title in SLICES:
        part = metrics.get("analysis", {}).get(key)
        if not part or not part.get("scorers"):
            continue
        scorers = part["scorers"]
        model, base = _best(scorers, False), _best(scorers, True)
        if model is None or base is None:
            continue
        versus = scorers[model].get("vs_best_baseline") or {}
        if versus.get("against") != base:  # compare with the best by F1 on this slice
            versus = {}
        cells = [
            f"{name}, {title} (n={part['n']}, {part['positives']} anomalous)",
            model,
            interval_text(scorers[model]["f1_ci"]),
            interval_text(scorers[model].get("roc_auc")),
            base.removeprefix("baseline: "),
            interval_text(scorers[base]["f1_ci"]),
            interval_text(scorers[base].get("roc_auc")),
            f"**{versus.get('f1', 'n/a')}**" + (f" (AUC: {versus['roc_auc']})" if "roc_auc" in versus else ""),
            _at_thresholds(scorers, model),
            _ranking(scorers),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def table(reports: list[tuple[str, dict]]) -> str:
    """The whole markdown table."""
    lines = [
        "| protocol and slice | best model arm | F1 [95% CI] | ROC-AUC | best baseline | F1 | ROC-AUC | "
        "LLM vs baseline (F1) | at validation thresholds (F1, paired) | "
        "ranking: best ROC-AUC vs best ROC-AUC (paired) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, metrics in reports:
        lines += rows_of(name, metrics)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    def build(reports: list[tuple[str, Path]]) -> str:
        return table([(name, json.loads((folder / "metrics.json").read_text())) for name, folder in reports])

    return report_table_command(__doc__.split("\n")[0], "metrics.json", build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
