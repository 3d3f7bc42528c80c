"""Report folder: every file is written, the table has every arm and baseline, one prediction line per sample."""

from __future__ import annotations

import json

from contract.completion_format import render_completion
from evaluation.baselines import BaselineResult
from evaluation.predictions import FORCED, ArmResult, predict
from evaluation.report import report_table, write_report

PNG_MAGIC = b"\x89PNG"


def _arm(name, mode, rows, completions, adapter="/runs/x/adapters/v3"):
    preds = [predict(row, mode, text) for row, text in zip(rows, completions)]
    return ArmResult(name, mode, preds, elapsed_s=0.5, adapter_path=adapter, adapter_version=3 if adapter else None)


def _training_log(path):
    rows = [{"stage": "sft", "step": 0, "loss": 1.0}]
    for run in range(2):  # a rerun appends and restarts at step 0: only the last run is plotted
        rows += [
            {"stage": "grpo", "step": s, "reward/total": 0.1 * s + run, "reward/format": 0.5, "rollout/accuracy": 0.5}
            | {"actor/kl_mean": 0.01 * s}
            for s in range(3)
        ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_write_report(tmp_path, anomalous_row, normal_row):
    rows = [anomalous_row, normal_row]
    reason = render_completion('L4 "data TLB error interrupt" is fatal.', "anomalous")
    arms = [
        _arm("adapter", "reason", rows, [reason, "rambling without tags"]),
        _arm("adapter", "fast", rows, ["<answer>anomalous</answer>", "<answer>normal</answer>"]),
        _arm("base", "reason", rows, ["junk", "junk"], adapter=None),
    ]
    baselines = [
        BaselineResult("majority", ["normal", "normal"], 0.001),
        BaselineResult("decision_tree", None, skipped="the train split has one class only (normal)"),
    ]
    log = _training_log(tmp_path / "metrics.jsonl")
    out = tmp_path / "eval"
    metrics = write_report(out, arms, baselines, rows, {"data_source": "test.jsonl"}, {"run": log})

    assert {p.name for p in out.iterdir()} >= {"report.md", "metrics.json", "predictions.jsonl", "scores.png"}
    for png in [*out.glob("confusion_*.png"), out / "scores.png", out / "training_run.png"]:
        assert png.read_bytes()[:4] == PNG_MAGIC, png
    assert len(list(out.glob("confusion_*.png"))) == 4  # three arms and the fitted baseline

    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == len(arms) * len(rows)
    first = lines[0]
    assert (first["arm"], first["mode"], first["id"], first["verdict"], first["well_formed"]) == (
        "adapter",
        "reason",
        "w1",
        "anomalous",
        True,
    )
    assert first["citations"] == [
        {"lines": [4, 4], "quote": "data TLB error interrupt", "grounded": True, "carries_anomaly": True}
    ]
    assert lines[1]["verdict"] is None and lines[1]["completion"] == "rambling without tags"

    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["info"]["n"] == 2 and saved["info"]["positives"] == 1
    assert saved["arms"]["adapter/reason"]["invalid_ids"] == ["w2"]
    assert saved["arms"]["adapter/fast"]["faithful_share"] is None
    assert saved["arms"]["base/reason"]["adapter_path"] is None

    table = report_table(metrics)
    for name in ("adapter/reason", "adapter/fast", "base/reason", "baseline: majority", "baseline: decision_tree"):
        assert f"| {name} |" in table
    assert len(table.splitlines()) == 2 + len(arms) + len(baselines)
    report = (out / "report.md").read_text()
    assert table in report
    assert "/runs/x/adapters/v3 (version 3)" in report and "test.jsonl" in report
    assert "one class only" in report and "w2" in report
    assert "![training_run](training_run.png)" in report


def test_report_counts_the_verdicts_budget_forcing_asked_for(tmp_path, anomalous_row, normal_row):
    rows = [anomalous_row, normal_row]
    forced = predict(anomalous_row, "grounded", "<think>L4 is a fault</think><answer>anomalous</answer>", FORCED, 99)
    answered = predict(normal_row, "grounded", "<think>routine</think><answer>normal</answer>", "stop", 9)
    arms = [ArmResult("adapter", "grounded", [forced, answered], 0.5), _arm("adapter", "reason", rows, ["x", "y"])]
    metrics = write_report(tmp_path, arms, [], rows)
    assert metrics["arms"]["adapter/grounded"]["forced"] == 1 and metrics["arms"]["adapter/reason"]["forced"] == 0
    assert metrics["arms"]["adapter/grounded"]["f1"] == 1.0  # a forced verdict counts as the verdict it is
    assert "1 verdicts asked for by budget forcing" in (tmp_path / "report.md").read_text()


def test_report_without_training_log(tmp_path, normal_row):
    arms = [_arm("base", "fast", [normal_row], ["<answer>normal</answer>"], adapter=None)]
    write_report(tmp_path, arms, [], [normal_row], training_logs={"run": tmp_path / "missing.jsonl"})
    assert not list(tmp_path.glob("training_*.png"))
    assert (tmp_path / "report.md").exists()


def test_report_analysis_intervals_thresholds_unseen_slice_and_ties(tmp_path, anomalous_row, normal_row):
    rows = [dict(anomalous_row, id=f"a{i}") for i in range(6)] + [dict(normal_row, id=f"n{i}") for i in range(14)]
    fast = [f"<answer>{row['label']}</answer>" for row in rows]
    arm = _arm("adapter", "fast", rows, fast)
    for p, row in zip(arm.predictions, rows, strict=True):
        p.score = 0.9 if row["label"] == "anomalous" else 0.1
    labels = [row["label"] for row in rows]
    perfect = BaselineResult("keyword", labels, 0.0, scores=[1.0 if y == "anomalous" else 0.0 for y in labels])
    unseen = [i % 2 == 0 for i in range(20)]
    out = tmp_path / "eval"
    metrics = write_report(out, [arm], [perfect], rows, {}, thresholds={"adapter/fast": 0.5}, unseen=unseen)
    every = metrics["analysis"]["all"]
    block = every["scorers"]["adapter/fast"]
    assert block["f1_ci"] == {"value": 1.0, "low": 1.0, "high": 1.0} and block["roc_auc"]["value"] == 1.0
    assert block["threshold"] == 0.5 and block["f1_at_threshold"]["value"] == 1.0
    assert every["best_baseline"] == "baseline: keyword" and block["vs_best_baseline"]["f1"] == "tie"
    assert metrics["analysis"]["unseen_templates"]["n"] == 10
    report = (out / "report.md").read_text()
    assert "## Scores and uncertainty: every evaluated row (n = 20, positives = 6)" in report
    assert "rows showing a template unseen in training (n = 10" in report and (out / "roc_pr.png").exists()
    from evaluation.wins import table

    rows_md = table([("toy", metrics)]).split("\n")[2:]
    assert len(rows_md) == 2 and rows_md[0].startswith("| toy, all rows (n=20, 6 anomalous) | adapter/fast | 1.000")
    assert "| keyword |" in rows_md[0] and "**tie**" in rows_md[0]


def test_the_validation_scores_each_threshold_was_chosen_on_are_kept(tmp_path, anomalous_row, normal_row):
    rows = [anomalous_row, normal_row]
    arm = _arm("adapter", "fast", rows, ["<answer>anomalous</answer>", "<answer>normal</answer>"])
    held = _arm("adapter", "fast", rows, ["<answer>normal</answer>", "<answer>normal</answer>"])
    held.predictions[0].score, held.predictions[1].score = 0.4, 0.1
    write_report(tmp_path / "with", [arm], [], rows, validation=[held])
    kept = [json.loads(line) for line in (tmp_path / "with" / "validation.jsonl").read_text().splitlines()]
    assert [(r["arm"], r["mode"], r["id"], r["label"], r["score"], r["verdict"]) for r in kept] == [
        ("adapter", "fast", anomalous_row["id"], "anomalous", 0.4, "normal"),
        ("adapter", "fast", normal_row["id"], "normal", 0.1, "normal"),
    ]
    write_report(tmp_path / "without", [arm], [], rows)
    assert not (tmp_path / "without" / "validation.jsonl").exists()
