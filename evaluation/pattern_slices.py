"""The sessions whose prompt shows a pattern, split by split and label, with the scores a report gave them: where a
threshold chosen on validation goes wrong, this says which kind of session is placed differently in each split.

    python -m evaluation.pattern_slices "to replicate" --with invalidSet \
        "latest=docs/results/thresholds/hdfs-base" "spread=docs/results/thresholds/hdfs-spread" --out FILE

Each report's rows come from the data folder its eval read (`info.data_source`'s parent: train/, validation/,
test/); scores from its validation.jsonl (validation) and predictions.jsonl (test), per fast arm. Train rows have
no score. `--with` splits the matching sessions again by whether a second pattern is shown too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.report import VALIDATION_FILE, records_by_arm, report_table_command
from pipelines.prompts.store import load_examples
from pipelines.sessions.splits import SPLITS, TEST, VALIDATION

HEADER = "| report | split | label | sessions | with the pattern | {also} | fast scores of those with the pattern |"


def data_folder(report: Path) -> Path:
    """The data folder a report's eval read (its test split's parent)."""
    source = Path(json.loads((report / "metrics.json").read_text())["info"]["data_source"])
    if not (source.parent / "train").is_dir():
        raise FileNotFoundError(f"{report}: its data folder {source.parent} is not here (build it again)")
    return source.parent


def scores_by_split(report: Path) -> dict[str, dict[str, dict[str, float]]]:
    """split -> fast arm -> session id -> score."""
    files = {VALIDATION: report / VALIDATION_FILE, TEST: report / "predictions.jsonl"}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split, path in files.items():
        if path.is_file():
            arms = records_by_arm(path).items()
            out[split] = {arm: {r["id"]: r["score"] for r in rows} for arm, rows in arms if arm.endswith("/fast")}
    return out


def score_text(scores: list[float]) -> str:
    if not scores:
        return ""
    return f"min {min(scores):.3f}, mean {sum(scores) / len(scores):.3f}, below 0.9: {sum(s < 0.9 for s in scores)}"


def slice_rows(name: str, report: Path, pattern: str, also: str | None) -> list[str]:
    """The table rows of one report: per split and label, counts and the scores of the matching sessions."""
    folder, scores = data_folder(report), scores_by_split(report)
    lines = []
    for split in SPLITS:
        rows = load_examples(folder / split)
        for label in sorted({row["label"] for row in rows}):
            members = [row for row in rows if row["label"] == label]
            shown = [row for row in members if pattern in row["prompt"]]
            both = sum(also in row["prompt"] for row in shown) if also else None
            arm_scores = "; ".join(
                f"{arm}: {score_text([by_id[row['id']] for row in shown if row['id'] in by_id])}"
                for arm, by_id in scores.get(split, {}).items()
                if shown
            )
            also_cell = "" if both is None else str(both)
            lines.append(f"| {name} | {split} | {label} | {len(members)} | {len(shown)} | {also_cell} | {arm_scores} |")
    return lines


def pattern_table(reports: list[tuple[str, Path]], pattern: str, also: str | None) -> str:
    head = HEADER.format(also=f"and `{also}`" if also else "")
    rule = "|" + "---|" * head.count(" |")
    body = [line for name, report in reports for line in slice_rows(name, report, pattern, also)]
    return "\n".join([f"Sessions whose prompt shows `{pattern}`", "", head, rule, *body])


def main(argv: list[str] | None = None) -> int:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pattern", help="text a prompt must show (a template's words)")
        parser.add_argument("--with", dest="also", help="a second pattern: how many matching sessions show it too")

    def build(reports: list[tuple[str, Path]], args: argparse.Namespace) -> str:
        return pattern_table(reports, args.pattern, args.also)

    return report_table_command(__doc__.splitlines()[0], "metrics.json", build, argv, options)


if __name__ == "__main__":
    raise SystemExit(main())
