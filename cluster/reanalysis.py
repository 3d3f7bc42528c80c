"""`logrl eval --reanalyse --out REPORT`: recompute a written report's analysis without running a model.

The arms' verdicts and scores come from the report's predictions.jsonl; their validation thresholds are chosen
again from the scores its validation.jsonl keeps (reports written before it: read from metrics.json). The rows, the
baselines and the unseen-template slice are rebuilt from the same config, `--data` and `--limit` the report was
written with. Every number the report already holds must come out the same (else it refuses and names the first
that moved); what the analysis has learned since (the paired comparison at the validation thresholds) is added to
metrics.json and report.md. With `--add-baselines`, configured baselines the report lacks join it: each scorer's
own numbers must still reproduce, while the comparisons with the best baseline are recomputed against the new set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from cluster.config import ConfigError, LogrlConfig
from evaluation.analysis import Scored
from evaluation.report import records_by_arm

TOLERANCE = 1e-9


def arm_scores(predictions: Path, ids: Sequence[str], thresholds: Mapping[str, float | None]) -> list[Scored]:
    """Each arm/mode of a predictions.jsonl as a `Scored` in the order of `ids`; refuses when its rows are not
    exactly those."""
    items = []
    for name, listed in records_by_arm(predictions).items():
        records = {r["id"]: r for r in listed}
        if set(records) != set(ids) or len(listed) != len(ids):
            raise ConfigError(
                f"{predictions}: {name} predicts {len(listed)} rows, the rebuilt rows are {len(ids)} "
                f"({len(set(records) ^ set(ids))} ids differ): not the data, --data or --limit it was written with"
            )
        ordered = [records[i] for i in ids]
        verdicts, scores = [r["verdict"] for r in ordered], [r.get("score") for r in ordered]
        items.append(Scored(name, verdicts, scores, thresholds.get(name)))
    return items


def validation_thresholds(path: Path) -> dict[str, float]:
    """Each arm/mode's threshold chosen again (`best_threshold`) on the validation scores a report kept."""
    from evaluation.stats import best_threshold

    return {
        name: best_threshold([r["label"] for r in records], [r["score"] for r in records])
        for name, records in records_by_arm(path).items()
    }


def moved(old, new, path: str = "analysis") -> str | None:
    """The first value of `old` that `new` does not reproduce (keys only `new` has are additions, not moves)."""
    if isinstance(old, Mapping):
        if not isinstance(new, Mapping):
            return path
        for key, value in old.items():
            if key not in new:
                return f"{path}.{key}"
            if found := moved(value, new[key], f"{path}.{key}"):
                return found
        return None
    if isinstance(old, float) and isinstance(new, (int, float)):
        return None if abs(old - new) <= TOLERANCE else path
    return None if old == new else path


COMPARISONS = (
    "best_baseline",
    "best_baseline_at_threshold",
    "best_ranking_baseline",
    "vs_best_baseline",
    "vs_best_baseline_at_threshold",
    "vs_best_ranking_baseline",
)


def own_numbers(analysis):
    """An analysis without its comparisons with the best baseline (what an added baseline may change)."""
    if not isinstance(analysis, Mapping):
        return analysis
    return {key: own_numbers(value) for key, value in analysis.items() if key not in COMPARISONS}


def reanalyse(
    cfg: LogrlConfig,
    out: str,
    data: str | None = None,
    limit: int | None = None,
    add_baselines: bool = False,
    train_subset: Sequence[dict] | None = None,
) -> dict:
    """Rebuild the rows and baselines of the report in `out`, recompute its analysis from its predictions, check
    it reproduces every number already there (`add_baselines`: every scorer's own numbers), and write the
    additions; returns the new metrics. `train_subset` (a label-curve point) replaces the train split the
    baselines fit on and the unseen-template slice is cut against, as it did when the report was written."""
    from cluster.stages import eval_rows, validation_rows
    from evaluation.baselines import run_baselines
    from evaluation.report import VALIDATION_FILE, analysis_of, baseline_entries, rewrite_analysis, scored_items
    from pipelines.building.dataset import load_examples
    from pipelines.prompts.novelty import has_unseen_template, seen_templates

    folder = Path(out)
    for name in ("metrics.json", "predictions.jsonl", "report.md"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"--reanalyse: {folder / name} does not exist (is --out a report folder?)")
    metrics = json.loads((folder / "metrics.json").read_text())
    written = metrics.get("analysis", {})
    summary, rows, _ = eval_rows(cfg, data, limit)
    train = list(train_subset) if train_subset is not None else load_examples(summary["paths"]["train"])
    baselines = run_baselines(train, rows, cfg.eval, validation_rows(summary))
    scorers = written.get("all", {}).get("scorers", {})
    thresholds = {name: block.get("threshold") for name, block in scorers.items()}
    if (folder / VALIDATION_FILE).is_file():
        thresholds |= validation_thresholds(folder / VALIDATION_FILE)
    items = arm_scores(folder / "predictions.jsonl", [row["id"] for row in rows], thresholds)
    items += [item for item in scored_items([], baselines) if item.name in scorers or not scorers or add_baselines]
    unseen = None
    if "unseen_templates" in written:
        seen = seen_templates(row["template_ids"] for row in train)
        unseen = [has_unseen_template(row["template_ids"], seen) for row in rows]
    analysis = analysis_of(items, [row["label"] for row in rows], unseen)
    if where := moved(own_numbers(written), own_numbers(analysis)) if add_baselines else moved(written, analysis):
        raise ConfigError(
            f"--reanalyse: {where} does not reproduce from {folder} with this config, --data and --limit "
            "(not the rows or baselines it was written with); nothing written"
        )
    entries = baseline_entries(baselines, [row["label"] for row in rows]) if add_baselines else {}
    had = metrics.get("baselines", {})
    return rewrite_analysis(folder, analysis, {name: entry for name, entry in entries.items() if name not in had})
