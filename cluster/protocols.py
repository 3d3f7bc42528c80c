"""Evaluation protocols beyond the prepared split: another system's data, and a label-efficiency curve.

- `split`: the run's own test split (or `--data`), as `stages.run_eval_stage` does it.
- `cross-system`: train on one system, test on another (`--data` names it; baselines fit on the source only).
- `label-curve`: SFT from the same base on seeded subsets of 25, 50, 100, 200, ... labelled training rows, each
  evaluated (fast mode, scores, thresholds on validation) beside baselines fitted on the same subset; with several
  subset seeds a budget is drawn, trained and scored once per seed, and the curve shows their mean and spread.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from cluster.config import ConfigError, LogrlConfig
from contract.adapter_store import PEFT_CONFIG_FILE, adapters_dir, version_name

PROTOCOLS = ("split", "cross-system", "label-curve")
DEFAULT_BUDGETS = "25,50,100,200,all"


def parse_budgets(text: str) -> list[int | None]:
    """`25,50,all` -> [25, 50, None] (None: every training row)."""
    budgets: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            budgets.append(None)
        elif part.isdigit() and int(part) > 0:
            budgets.append(int(part))
        else:
            raise ConfigError(f"--budgets: {part!r} is not a positive number or 'all' (e.g. {DEFAULT_BUDGETS})")
    return budgets


def label_subset(labels: list[str], budget: int | None, seed: int) -> list[int]:
    """Indices of a seeded subset of `budget` rows that keeps the label mix and holds both classes when it can."""
    import random

    n = len(labels)
    if budget is None or budget >= n:
        return list(range(n))
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    chosen: list[int] = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        take = max(1, round(budget * len(members) / n)) if len(by_label) > 1 else budget
        chosen += members[:take]
    chosen = chosen[:budget] if len(chosen) > budget else chosen
    return sorted(chosen)


def parse_seeds(text: str | None, default: int) -> list[int]:
    """`--curve-seeds 0,1,2` -> [0, 1, 2]; None -> [the data seed] (one subset per budget, as before)."""
    if text is None:
        return [default]
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ConfigError(f"--curve-seeds: {part!r} is not a non-negative integer (e.g. 0,1,2)")
        if int(part) not in seeds:
            seeds.append(int(part))
    return seeds


def point_name(rows: int, seed: int, data_seed: int) -> str:
    """A point's folder: `n100` for the data seed's subset (the name curves had before seeds), else `n100-s1`."""
    return f"n{rows}" if seed == data_seed else f"n{rows}-s{seed}"


def sft_steps_for(rows: int, batch_size: int, epochs: float, cap: int) -> int:
    """SFT steps for a subset: `epochs` passes over it, never more than the full run's steps."""
    return max(1, min(cap, math.ceil(epochs * rows / batch_size)))


def run_label_curve(
    cfg: LogrlConfig, budgets: list[int | None], out: str | None, epochs: float, seeds: list[int] | None = None
) -> dict:
    """For each budget and subset seed: SFT on the subset (skipped when its adapter exists: the curve resumes),
    evaluate it in fast mode beside baselines fitted on the same subset; then the curve (F1 with intervals, the
    mean over seeds) as a table and a plot, with the points an earlier run wrote into the same `out` and this one
    did not draw again (`merged_points`: a curve grows by budgets; a new recipe wants a new `out`). Each point's SFT
    run lives in `<train.output_dir>/label-curve/<name>` (`point_name`); `out` gets the reports only. Every row of
    the train split is one subset, whatever the seed."""
    from cluster.stages import ensure_data, run_eval_stage
    from pipelines.building.dataset import load_examples
    from rl_actors.trainer import run_sft

    summary = ensure_data(cfg)
    train = load_examples(summary["paths"]["train"])
    out_dir = Path(out or Path(cfg.train.output_dir) / "label-curve")
    points = []
    seeds = seeds or [cfg.data.seed]
    draws = [(b, s) for b in budgets for s in (seeds[:1] if b is None or b >= len(train) else seeds)]
    for budget, seed in draws:
        indices = label_subset([row["label"] for row in train], budget, seed)
        subset = [train[i] for i in indices]
        name = point_name(len(subset), seed, cfg.data.seed)
        run_dir = Path(cfg.train.output_dir) / "label-curve" / name  # adapters stay in the run, reports go to out
        point_cfg = cfg.model_copy(deep=True)
        point_cfg.train.output_dir = str(run_dir)
        point_cfg.train.mlflow = False
        full_run = len(subset) == len(train)
        point_cfg.sft.steps = (
            cfg.sft.steps if full_run else sft_steps_for(len(subset), cfg.sft.batch_size, epochs, cfg.sft.steps)
        )
        adapter = adapters_dir(run_dir) / version_name(0)
        full = adapters_dir(cfg.train.output_dir) / version_name(0)
        if full_run and (full / PEFT_CONFIG_FILE).exists():
            adapter = full  # every row: the run's own SFT adapter is that point
            print(f"[label-curve] {name}: the run's SFT adapter {full}")
        elif not (adapter / PEFT_CONFIG_FILE).exists():
            from cluster.environment import init_ray
            from cluster.stages import ensure_model

            ensure_model(point_cfg)
            init_ray(cfg.ray.address, cfg.ray.num_cpus)
            started = time.perf_counter()
            run_sft(point_cfg, subset)
            print(f"[label-curve] {name}: {point_cfg.sft.steps} SFT steps in {time.perf_counter() - started:.0f}s")
        result = run_eval_stage(
            point_cfg,
            adapter=str(adapter),
            mode="fast",
            out=str(out_dir / name),
            train_subset=subset,
            protocol=f"label-curve ({len(subset)} labels)",
        )
        points.append(curve_point(subset, seed, budget, point_cfg.sft.steps, result["metrics"]))
    written = json.loads((out_dir / "curve.json").read_text()) if (out_dir / "curve.json").is_file() else []
    return write_curve(out_dir, merged_points(written, points))


def merged_points(written: list[dict], new: list[dict]) -> list[dict]:
    """A curve grown by a run: the points its curve.json already held that this run did not draw again (same
    labels and seed), with the new ones, ordered by labels then seed; a redrawn point is replaced."""

    def key(point: dict) -> tuple[int, int]:
        return point["labels"], -1 if point.get("seed") is None else point["seed"]

    drawn = {key(point) for point in new}
    return sorted([point for point in written if key(point) not in drawn] + new, key=key)


def curve_point(subset: list[dict], seed: int | None, budget: int | None, sft_steps: int, metrics: dict) -> dict:
    """One point of a curve.json: its draw (budget, seed, labels), SFT steps and each scorer's F1 and ROC-AUC."""
    analysis = metrics["analysis"]["all"]
    return {
        "labels": len(subset),
        "budget": budget,
        "seed": seed,
        "anomalous": sum(row["label"] == "anomalous" for row in subset),
        "sft_steps": sft_steps,
        "validation_rows": metrics["info"].get("validation_rows", 0),
        "scorers": {
            k: {m: v.get(m) for m in ("f1_ci", "f1_at_threshold", "roc_auc")} for k, v in analysis["scorers"].items()
        },
    }


def reanalyse_label_curve(cfg: LogrlConfig, out: str, add_baselines: bool = False) -> dict:
    """`--reanalyse` of a written curve: each point its curve.json lists is drawn again from the run's train split
    (same budget and seed), its report reanalysed (`cluster.reanalysis.reanalyse`, baselines fitted on that subset;
    `add_baselines`: configured baselines the reports lack join them), and the table and plot written again."""
    from cluster.reanalysis import reanalyse
    from cluster.stages import ensure_data
    from pipelines.building.dataset import load_examples

    out_dir = Path(out)
    if not (out_dir / "curve.json").is_file():
        raise FileNotFoundError(f"--reanalyse: {out_dir / 'curve.json'} does not exist (is --out a label curve?)")
    written = json.loads((out_dir / "curve.json").read_text())
    train = load_examples(ensure_data(cfg)["paths"]["train"])
    labels = [row["label"] for row in train]
    points = []
    for old in written:
        seed = cfg.data.seed if old.get("seed") is None else old["seed"]
        budget = old.get("budget", old["labels"])  # curves written before `budget`: a draw's size was its budget
        subset = [train[i] for i in label_subset(labels, budget, seed)]
        if len(subset) != old["labels"]:
            raise ConfigError(
                f"--reanalyse: {out_dir}: the {old['labels']}-label point draws {len(subset)} rows from this "
                "train split: not the data it was written with"
            )
        metrics = reanalyse(
            cfg, str(out_dir / point_name(len(subset), seed, cfg.data.seed)), None, None, add_baselines, subset
        )
        points.append(curve_point(subset, old.get("seed"), budget, old["sft_steps"], metrics))
    return write_curve(out_dir, points)


def seed_means(points: list[dict]) -> list[dict]:
    """Per budget drawn with more than one seed: the mean F1 of each scorer over its seeds, and their min and max."""
    from evaluation.analysis import curve_f1

    by_budget: dict[int, list[dict]] = {}
    for point in points:
        by_budget.setdefault(point["labels"], []).append(point)
    means = []
    for labels, group in by_budget.items():
        if len(group) < 2:
            continue
        scorers = {}
        for name in group[0]["scorers"]:
            values = [(curve_f1(p["scorers"].get(name, {})) or {}).get("value") for p in group]
            values = [v for v in values if v is not None]
            if values:
                scorers[name] = {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}
        means.append({"labels": labels, "seeds": [p.get("seed") for p in group], "scorers": scorers})
    return means


def write_curve(out_dir: Path, points: list[dict]) -> dict:
    """curve.json, curve.md (F1 per budget and seed with intervals, the mean over seeds, verdict F1) and curve.png."""
    from evaluation.analysis import curve_f1, interval_text
    from evaluation.plots import plot_label_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(points[0]["scorers"]) if points else []
    header = "| " + " | ".join(names) + " |"
    lines = ["# Label-efficiency curve", "", "| labels (anomalous) | seed | SFT steps " + header]
    lines.append("|" + "---|" * (len(names) + 3))
    for point in points:
        cells = [interval_text(curve_f1(point["scorers"].get(name, {}))) for name in names]
        lines.append(
            f"| {_budget(point)} | {point.get('seed', '')} | {point['sft_steps']} | " + " | ".join(cells) + " |"
        )
    means = seed_means(points)
    for mean in means:
        cells = []
        for name in names:
            m = mean["scorers"].get(name)
            cells.append(f"{m['mean']:.3f} ({m['min']:.3f}-{m['max']:.3f})" if m else "n/a")
        label = f"**{mean['labels']}: mean of {len(mean['seeds'])} seeds** (min-max)"
        lines.append(f"| {label} | | | " + " | ".join(cells) + " |")
    validation = max((point.get("validation_rows") or 0 for point in points), default=0)
    lines += [
        "",
        "F1 on the test split at the threshold chosen on validation (verdicts where a scorer has no threshold), with "
        "bootstrap 95% intervals; a seed draws a different subset of the same size (the data seed's is the one "
        "curves drew before seeds)."
        + (
            f" Every threshold, the model's and the baselines', is chosen on the same {validation} labelled "
            "validation rows, which no budget counts; the verdicts below use none of them."
            if validation
            else ""
        ),
        "",
        "Verdict F1 (no threshold, no validation labels):",
        "",
        "| labels (anomalous) | seed " + header,
        "|" + "---|" * (len(names) + 2),
    ]
    for point in points:
        cells = [interval_text(point["scorers"].get(name, {}).get("f1_ci")) for name in names]
        lines.append(f"| {_budget(point)} | {point.get('seed', '')} | " + " | ".join(cells) + " |")
    lines += ["", "![label curve](curve.png)", ""]
    (out_dir / "curve.md").write_text("\n".join(lines))
    (out_dir / "curve.json").write_text(json.dumps(points, indent=2) + "\n")
    plot_label_curve(points, out_dir / "curve.png")
    return {"out": str(out_dir), "points": points, "means": means}


def _budget(point: dict) -> str:
    return f"{point['labels']} ({point['anomalous']})"
