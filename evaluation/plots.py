"""PNG figures for the eval report: confusion matrices, P/R/F1 bars per arm, and training curves."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from evaluation.analysis import curve_f1  # noqa: E402

CURVE_PANELS = (("reward by component", "reward/"), ("rollout accuracy", "rollout/accuracy"), ("KL", "actor/kl_mean"))


def plot_confusion(counts: Mapping[str, int], title: str, path: Path) -> Path:
    """A 2x2 confusion matrix (rows: true class, columns: verdict; no verdict counts as the wrong class)."""
    grid = [[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]]
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(grid, cmap="Blues")
    darkest = max(max(row) for row in grid)
    for r in range(2):
        for c in range(2):
            color = "white" if darkest and grid[r][c] > darkest / 2 else "black"
            ax.text(c, r, str(grid[r][c]), ha="center", va="center", fontsize=12, color=color)
    ax.set_xticks([0, 1], ["normal", "anomalous"])
    ax.set_yticks([0, 1], ["normal", "anomalous"])
    ax.set_xlabel("verdict")
    ax.set_ylabel("true label")
    ax.set_title(f"{title}\n(no verdict: {counts.get('invalid', 0)})", fontsize=9)
    return _save(fig, path)


def plot_scores(scores: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Grouped bars: precision, recall and F1 for every arm and baseline."""
    names = list(scores)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 3.6))
    width = 0.27
    for k, metric in enumerate(("precision", "recall", "f1")):
        xs = [i + (k - 1) * width for i in range(len(names))]
        ax.bar(xs, [scores[n][metric] for n in names], width, label=metric)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("anomalous class")
    return _save(fig, path)


def plot_curves(curves: Mapping[str, tuple[list[int], list[float]]], path: Path) -> Path | None:
    """ROC and precision-recall curves of every scorer with scores: name -> (labels as 0/1, scores)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    curves = {name: (y, s) for name, (y, s) in curves.items() if 0 < sum(y) < len(y)}
    if not curves:
        return None
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        roc.plot(fpr, tpr, label=name, linewidth=1.2)
        precision, recall, _ = precision_recall_curve(y, s)
        pr.plot(recall, precision, label=name, linewidth=1.2)
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    pr.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_label_curve(points: list[dict], path: Path) -> Path | None:
    """F1 (at the validation threshold where there is one) against the number of labelled training rows, one line
    per model and baseline through the mean over a budget's seeds, each seed's point as a dot, and the bootstrap
    95% interval (its widest extent over the seeds) as a band."""
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    budgets = sorted({p["labels"] for p in points})
    for name in points[0]["scorers"]:
        per_point = []
        for p in points:
            best = curve_f1(p["scorers"].get(name, {})) or {}
            value = best.get("value") or 0.0
            low = best.get("low") if best.get("low") is not None else value
            high = best.get("high") if best.get("high") is not None else value
            per_point.append((p["labels"], value, low, high))
        values, lows, highs = [], [], []
        for budget in budgets:
            group = [row for row in per_point if row[0] == budget]
            values.append(sum(row[1] for row in group) / len(group))
            lows.append(min(row[2] for row in group))
            highs.append(max(row[3] for row in group))
        style = "--" if name.startswith("baseline") else "-"
        (line,) = ax.plot(budgets, values, style, marker="o", label=name, linewidth=1.3)
        ax.fill_between(budgets, lows, highs, color=line.get_color(), alpha=0.12)
        if len(per_point) > len(budgets):
            ax.scatter([r[0] for r in per_point], [r[1] for r in per_point], color=line.get_color(), s=10)
    ax.set_xscale("log")
    ax.set(xlabel="labelled training rows", ylabel="F1 (test)", ylim=(0, 1.02), title="label efficiency")
    ax.legend(fontsize=7)
    return _save(fig, path)


def read_training_log(path: Path, stage: str = "grpo") -> list[dict]:
    """The last run's rows of one stage from a trainer's metrics.jsonl (a rerun appends and restarts at step 0)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("stage") == stage and "step" in row]
    start = 0
    for i in range(1, len(rows)):
        if rows[i]["step"] <= rows[i - 1]["step"]:
            start = i
    return rows[start:]


def plot_training(rows: list[dict], title: str, path: Path) -> Path | None:
    """Reward components, rollout accuracy and KL against the step; None if the log has none of them."""
    panels = []
    for label, prefix in CURVE_PANELS:
        keys = sorted({k for row in rows for k in row if k == prefix or (prefix[-1] == "/" and k.startswith(prefix))})
        if keys:
            panels.append((label, keys))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (label, keys) in zip(axes[0], panels):
        for key in keys:
            points = [(row["step"], row[key]) for row in rows if isinstance(row.get(key), int | float)]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=key, marker=".")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
