"""The eval report folder: report.md, metrics.json, predictions.jsonl and PNG plots."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from evaluation.analysis import Scored, analyse, interval_text
from evaluation.baselines import BaselineResult
from evaluation.metrics import POSITIVE, score_predictions, score_verdicts
from evaluation.plots import plot_confusion, plot_curves, plot_scores, plot_training, read_training_log
from evaluation.predictions import FORCED, ArmResult
from evaluation.stats import filled

COLUMNS = (
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
    ("accuracy", "accuracy"),
    ("well-formed", "well_formed"),
    ("faithful", "faithful_share"),
    ("faithful (anomalous)", "faithful_anomalous"),
    ("evidence recall", "evidence_recall"),
    ("flip rate", "flip_rate"),
    ("samples/s", "samples_per_s"),
)
MAX_LISTED_INVALID = 50
VALIDATION_FILE = "validation.jsonl"


def arm_key(result: ArmResult) -> str:
    """The report's row name of an arm in one mode."""
    return f"{result.name}/{result.mode}"


def scored_items(
    arms: Sequence[ArmResult], baselines: Sequence[BaselineResult], thresholds: Mapping[str, float] | None = None
) -> list[Scored]:
    """Every arm (per mode) and fitted baseline as a `Scored`, named as the report names its row."""
    items = [
        Scored(arm_key(arm), [p.verdict for p in arm.predictions], [p.score for p in arm.predictions]) for arm in arms
    ]
    for item in items:
        item.threshold = (thresholds or {}).get(item.name)
    items += [
        Scored(f"baseline: {b.name}", b.verdicts, b.scores, b.threshold if b.scores is not None else None, True)
        for b in baselines
        if b.verdicts is not None
    ]
    return items


def collect_metrics(
    arms: Sequence[ArmResult],
    baselines: Sequence[BaselineResult],
    rows: Sequence[dict],
    info: Mapping | None = None,
    thresholds: Mapping[str, float] | None = None,
    unseen: Sequence[bool] | None = None,
    seed: int = 0,
    perturbed: Sequence[ArmResult] = (),
) -> dict:
    """Everything metrics.json holds: run info, each arm's and baseline's scores (or why a baseline was skipped),
    and `analysis`: intervals, AUCs, validation thresholds and the comparison with the best baseline, on all rows
    and on the rows showing a template training never saw (`unseen`)."""
    labels = [row["label"] for row in rows]
    out = {
        "info": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "n": len(rows),
            "positives": sum(label == POSITIVE for label in labels),
            **(info or {}),
        },
        "arms": {},
        "baselines": {},
    }
    for arm in arms:
        scores = score_predictions(arm.predictions, arm.elapsed_s).to_dict()
        invalid_ids = [p.id for p in arm.predictions if p.verdict is None]
        out["arms"][arm_key(arm)] = {
            "arm": arm.name,
            "mode": arm.mode,
            "adapter_path": arm.adapter_path,
            "adapter_version": arm.adapter_version,
            "elapsed_s": arm.elapsed_s,
            **scores,
            "invalid_ids": invalid_ids,
            "contradictions": sum(p.contradicts for p in arm.predictions),
            "forced": sum(p.finish_reason == FORCED for p in arm.predictions),
        }
    out["baselines"] = baseline_entries(baselines, labels)
    for other in perturbed:  # the same rows with live-log perturbations: how often does the verdict change?
        base = out["arms"].get(arm_key(other))
        if base is not None:
            same = {p.id: p.verdict for p in next(a for a in arms if arm_key(a) == arm_key(other)).predictions}
            flips = sum(p.verdict != same.get(p.id) for p in other.predictions)
            base["flip_rate"], base["flip_rows"] = flips / max(len(other.predictions), 1), len(other.predictions)
    out["analysis"] = analysis_of(scored_items(arms, baselines, thresholds), labels, unseen, seed)
    return out


def baseline_entries(baselines: Sequence[BaselineResult], labels: Sequence[str]) -> dict[str, dict]:
    """metrics.json's `baselines`: each one's verdict scores, or why it was skipped."""
    return {
        base.name: {"skipped": base.skipped}
        if base.verdicts is None
        else score_verdicts(labels, base.verdicts, base.elapsed_s).to_dict()
        for base in baselines
    }


def analysis_of(
    items: Sequence[Scored], labels: Sequence[str], unseen: Sequence[bool] | None = None, seed: int = 0
) -> dict:
    """metrics.json's `analysis`: on all rows, and on the rows showing a template training never saw (`unseen`)."""
    out = {"all": analyse(items, labels, seed=seed)}
    if unseen is not None:
        out["unseen_templates"] = analyse(items, labels, unseen, seed)
    return out


def rewrite_analysis(out: str | Path, analysis: Mapping, added_baselines: Mapping[str, dict] | None = None) -> dict:
    """Replace a written report's `analysis` (metrics.json and report.md; its plots are kept as they are), with the
    verdict scores of baselines added since it was written."""
    out = Path(out)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["analysis"] = dict(analysis)
    metrics["baselines"] = metrics.get("baselines", {}) | dict(added_baselines or {})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    shown = re.findall(r"^!\[[^\]]*\]\(([^)]+)\)$", (out / "report.md").read_text(), flags=re.M)
    (out / "report.md").write_text(_markdown(metrics, [out / name for name in shown]))
    return metrics


def _cell(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if isinstance(value, float) and value > 1 else f"{value:.3f}"


def report_table(metrics: Mapping) -> str:
    """The markdown table of every arm and baseline (faithfulness is n/a for baselines and answer-only modes)."""
    header = "| model | " + " | ".join(title for title, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, scores in metrics["arms"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(scores.get(key)) for _, key in COLUMNS) + " |")
    for name, scores in metrics["baselines"].items():
        if "skipped" in scores:
            lines.append(f"| baseline: {name} | " + " | ".join("skipped" for _ in COLUMNS) + " |")
            continue
        cells = [_cell(scores.get(key)) for _, key in COLUMNS]
        lines.append(f"| baseline: {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ANALYSIS_COLUMNS = (
    ("F1 [95% CI]", "f1_ci"),
    ("ROC-AUC", "roc_auc"),
    ("PR-AUC", "pr_auc"),
    ("F1 at validation threshold", "f1_at_threshold"),
    ("best F1 any threshold reaches (bound)", "f1_any_threshold"),
)


def analysis_table(analysis: Mapping) -> str:
    """F1, ROC-AUC and PR-AUC with bootstrap 95% intervals, F1 at the threshold chosen on validation, the best F1 any
    threshold reaches on these rows (a bound that reads their labels), and each arm's paired F1 comparison with the
    best baseline, on verdicts and at the validation thresholds, and the paired ROC-AUC comparison with the
    best-ranking baseline (a difference whose interval holds 0 is a tie)."""
    best, best_t = analysis.get("best_baseline"), analysis.get("best_baseline_at_threshold")
    best_r = analysis.get("best_ranking_baseline")
    header = "| model | " + " | ".join(t for t, _ in ANALYSIS_COLUMNS) + f" | F1 vs {best or 'best baseline'} |"
    # (key in each arm's block, the verdict and difference it holds), shown where the report has the comparison
    shown = [("vs_best_baseline", "f1", "f1_difference")]
    for title, against, key, measure in (
        ("F1 at thresholds", best_t, "vs_best_baseline_at_threshold", "f1"),
        ("ROC-AUC", best_r, "vs_best_ranking_baseline", "roc_auc"),
    ):
        if against:
            header += f" {title} vs {against} |"
            shown.append((key, measure, f"{measure}_difference"))
    lines = [header, "|" + "---|" * (len(ANALYSIS_COLUMNS) + 1 + len(shown))]
    for name, block in analysis.get("scorers", {}).items():
        cells = [interval_text(block.get(key)) for _, key in ANALYSIS_COLUMNS]
        if "threshold" in block and block.get("f1_at_threshold"):
            cells[3] += f" (t={block['threshold']:.2f})"
        if block.get("f1_any_threshold"):
            cells[4] += f" (t={block['f1_any_threshold']['threshold']:.2f})"
        for key, measure, difference in shown:
            versus = block.get(key)
            cells.append(f"{versus[measure]} ({interval_text(versus[difference])})" if versus else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors_table(analysis: Mapping) -> str:
    """Each arm's wrong calls at its validation threshold beside the baseline best at its own: rows both get wrong
    (no blend of the two fixes those), rows only one does, and F1 with the better call on every row (the bound of
    any blend); empty where no arm has that comparison."""
    against = analysis.get("best_baseline_at_threshold")
    rows = [
        (name, block["vs_best_baseline_at_threshold"]["errors"])
        for name, block in analysis.get("scorers", {}).items()
        if "errors" in block.get("vs_best_baseline_at_threshold", {})
    ]
    if not rows or not against:
        return ""
    lines = [
        f"| model | wrong, both it and {against} (false alarms / misses) | wrong, it only | wrong, {against} only "
        "| F1 with the better call on every row |",
        "|---|---|---|---|---|",
    ]
    for name, e in rows:
        both = f"{e['both']} ({e['both_false_alarms']} / {e['both_misses']})"
        lines.append(f"| {name} | {both} | {e['this_only']} | {e['baseline_only']} | {_cell(e['f1_either_right'])} |")
    return "\n".join(lines)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_plots(
    out: Path, metrics: Mapping, training_logs: Mapping[str, Path], curves: Mapping | None = None
) -> list[Path]:
    """Confusion matrices (arms and fitted baselines), the P/R/F1 bars, and training curves where logs exist."""
    scored = dict(metrics["arms"]) | {
        f"baseline: {name}": s for name, s in metrics["baselines"].items() if "skipped" not in s
    }
    paths = [plot_confusion(s, name, out / f"confusion_{_slug(name)}.png") for name, s in scored.items()]
    if scored:
        paths.append(plot_scores(scored, out / "scores.png"))
    if curves:
        figure = plot_curves(curves, out / "roc_pr.png")
        paths += [figure] if figure else []
    for name, log in training_logs.items():
        if Path(log).is_file():
            figure = out / f"training_{_slug(name)}.png"
            if plot_training(read_training_log(Path(log)), f"training: {name}", figure):
                paths.append(figure)
    return paths


def _shown(path: str) -> str:
    """A path as a reader of the report knows it: relative to the working directory when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _markdown(metrics: Mapping, plots: Sequence[Path]) -> str:
    info = metrics["info"]
    lines = [
        "# logrl evaluation",
        "",
        f"- date: {info['date']}",
        f"- data: {info.get('data_source', 'n/a')} (n = {info['n']}, positives (anomalous) = {info['positives']})",
    ]
    shown = ("date", "n", "positives", "data_source")
    lines += [f"- {key}: {value}" for key, value in info.items() if key not in shown]
    lines += ["", report_table(metrics), ""]
    for key, title in (
        ("all", "every evaluated row"),
        ("unseen_templates", "rows showing a template unseen in training"),
    ):
        part = metrics.get("analysis", {}).get(key)
        if part:
            lines += [
                f"## Scores and uncertainty: {title} (n = {part['n']}, positives = {part['positives']})",
                "",
                analysis_table(part),
                "",
            ]
            if errors := errors_table(part):
                lines += ["Wrong calls at the validation thresholds:", "", errors, ""]
    lines += ["## Arms", ""]
    for name, arm in metrics["arms"].items():
        adapter = f"{_shown(arm['adapter_path'])} (version {arm['adapter_version']})" if arm["adapter_path"] else "none"
        invalid = arm["invalid_ids"]
        shown = ", ".join(invalid[:MAX_LISTED_INVALID]) + (" ..." if len(invalid) > MAX_LISTED_INVALID else "")
        lines.append(
            f"- **{name}**: adapter {adapter}; tp {arm['tp']}, fp {arm['fp']}, tn {arm['tn']}, fn {arm['fn']}; "
            f"latency {_cell(arm['latency_s'])} s/sample; faithful over {arm['rationales']} rationales, "
            f"evidence recall over {arm['evidence_rows']} true positives with an anomaly line shown; "
            f"{arm['contradictions']} rationales arguing for the other class; "
            f"{arm.get('forced', 0)} verdicts asked for by budget forcing; "
            f"{len(invalid)} without a verdict (counted wrong){': ' + shown if invalid else ''}"
        )
    skipped = {name: s["skipped"] for name, s in metrics["baselines"].items() if "skipped" in s}
    if skipped:
        lines += ["", "## Skipped baselines", ""] + [f"- {name}: {reason}" for name, reason in skipped.items()]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(
    out: str | Path,
    arms: Sequence[ArmResult],
    baselines: Sequence[BaselineResult],
    rows: Sequence[dict],
    info: Mapping | None = None,
    training_logs: Mapping[str, Path] | None = None,
    thresholds: Mapping[str, float] | None = None,
    unseen: Sequence[bool] | None = None,
    perturbed: Sequence[ArmResult] = (),
    validation: Sequence[ArmResult] = (),
) -> dict:
    """Write report.md, metrics.json, predictions.jsonl (a line per sample, arm and mode), validation.jsonl (each
    arm's scores on the validation rows its threshold was chosen on, when there are any) and plots; return metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = collect_metrics(arms, baselines, rows, info, thresholds, unseen, perturbed=perturbed)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (out / "predictions.jsonl").open("w") as handle:
        for arm in arms:
            for prediction in arm.predictions:
                handle.write(json.dumps({"arm": arm.name, **prediction.to_dict()}) + "\n")
    if validation:
        with (out / VALIDATION_FILE).open("w") as handle:
            for arm in validation:
                for p in arm.predictions:
                    record = {
                        "arm": arm.name,
                        "mode": arm.mode,
                        "id": p.id,
                        "label": p.label,
                        "score": p.score,
                        "verdict": p.verdict,
                    }
                    handle.write(json.dumps(record) + "\n")
    labels = [1 if row["label"] == POSITIVE else 0 for row in rows]
    curves = {
        item.name: (labels, filled(item.scores).tolist()) for item in scored_items(arms, baselines) if item.scores
    }
    plots = write_plots(out, metrics, training_logs or {}, curves)
    (out / "report.md").write_text(_markdown(metrics, plots))
    return metrics


def records_by_arm(path: Path) -> dict[str, list[dict]]:
    """A report's jsonl records (predictions.jsonl, validation.jsonl) grouped by the report's `arm/mode` names."""
    by_arm: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        by_arm.setdefault(f"{record['arm']}/{record['mode']}", []).append(record)
    return by_arm


def report_table_command(
    description: str,
    needs: str,
    build: Callable[..., str],
    argv: list[str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """`python -m evaluation.<table> NAME=REPORT_DIR ... [--out FILE]`: the markdown `build` makes of the named
    report folders (each must hold `needs`), printed and, with --out, written. `options` adds a command's own
    arguments (declared before the reports); `build` then gets the parsed arguments too."""
    parser = argparse.ArgumentParser(description=description)
    if options:
        options(parser)
    parser.add_argument("reports", nargs="+", metavar="NAME=REPORT_DIR")
    parser.add_argument("--out", help="write the table here (default: print it)")
    args = parser.parse_args(argv)
    reports = []
    for item in args.reports:
        name, _, folder = item.partition("=")
        if not (Path(folder) / needs).is_file():
            parser.error(f"{folder} has no {needs}")
        reports.append((name, Path(folder)))
    text = (build(reports, args) if options else build(reports)) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return 0
