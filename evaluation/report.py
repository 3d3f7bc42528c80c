"""The eval report folder: report.md, metrics.json, predictions.jsonl and PNG plots."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from evaluation.baselines import BaselineResult
from evaluation.metrics import POSITIVE, score_predictions, score_verdicts
from evaluation.plots import plot_confusion, plot_scores, plot_training, read_training_log
from evaluation.predictions import ArmResult

COLUMNS = (
    ("precision", "precision"),
    ("recall", "recall"),
    ("F1", "f1"),
    ("accuracy", "accuracy"),
    ("well-formed", "well_formed"),
    ("faithful", "faithful_share"),
    ("faithful (anomalous)", "faithful_anomalous"),
    ("evidence recall", "evidence_recall"),
    ("samples/s", "samples_per_s"),
)
MAX_LISTED_INVALID = 50


def arm_key(result: ArmResult) -> str:
    """The report's row name of an arm in one mode."""
    return f"{result.name}/{result.mode}"


def collect_metrics(
    arms: Sequence[ArmResult], baselines: Sequence[BaselineResult], rows: Sequence[dict], info: Mapping | None = None
) -> dict:
    """Everything metrics.json holds: run info, each arm's and baseline's scores (or why a baseline was skipped)."""
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
        }
    for base in baselines:
        if base.verdicts is None:
            out["baselines"][base.name] = {"skipped": base.skipped}
        else:
            out["baselines"][base.name] = score_verdicts(labels, base.verdicts, base.elapsed_s).to_dict()
    return out


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


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_plots(out: Path, metrics: Mapping, training_logs: Mapping[str, Path]) -> list[Path]:
    """Confusion matrices (arms and fitted baselines), the P/R/F1 bars, and training curves where logs exist."""
    scored = dict(metrics["arms"]) | {
        f"baseline: {name}": s for name, s in metrics["baselines"].items() if "skipped" not in s
    }
    paths = [plot_confusion(s, name, out / f"confusion_{_slug(name)}.png") for name, s in scored.items()]
    if scored:
        paths.append(plot_scores(scored, out / "scores.png"))
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
    lines += ["", report_table(metrics), "", "## Arms", ""]
    for name, arm in metrics["arms"].items():
        adapter = f"{_shown(arm['adapter_path'])} (version {arm['adapter_version']})" if arm["adapter_path"] else "none"
        invalid = arm["invalid_ids"]
        shown = ", ".join(invalid[:MAX_LISTED_INVALID]) + (" ..." if len(invalid) > MAX_LISTED_INVALID else "")
        lines.append(
            f"- **{name}**: adapter {adapter}; tp {arm['tp']}, fp {arm['fp']}, tn {arm['tn']}, fn {arm['fn']}; "
            f"latency {_cell(arm['latency_s'])} s/sample; faithful over {arm['rationales']} rationales, "
            f"evidence recall over {arm['evidence_rows']} true positives with an anomaly line shown; "
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
) -> dict:
    """Write report.md, metrics.json, predictions.jsonl (a line per sample, arm and mode) and plots; return metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = collect_metrics(arms, baselines, rows, info)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (out / "predictions.jsonl").open("w") as handle:
        for arm in arms:
            for prediction in arm.predictions:
                handle.write(json.dumps({"arm": arm.name, **prediction.to_dict()}) + "\n")
    plots = write_plots(out, metrics, training_logs or {})
    (out / "report.md").write_text(_markdown(metrics, plots))
    return metrics
