"""The label curve's pure parts: budgets, subsets that keep both classes, SFT steps, the curve files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.config import ConfigError
from cluster.protocols import (
    curve_point,
    label_subset,
    merged_points,
    parse_budgets,
    parse_seeds,
    point_name,
    reanalyse_label_curve,
    seed_means,
    sft_steps_for,
    write_curve,
)


def test_budgets_parse_and_bad_ones_name_the_option():
    assert parse_budgets("25, 50,all") == [25, 50, None]
    with pytest.raises(ConfigError, match="--budgets: 'ten'"):
        parse_budgets("25,ten")


def test_subsets_keep_the_label_mix_and_both_classes_and_are_seeded():
    labels = ["anomalous"] * 9 + ["normal"] * 91
    subset = label_subset(labels, 25, seed=0)
    assert len(subset) == 25 and 1 <= sum(labels[i] == "anomalous" for i in subset) <= 3
    assert label_subset(labels, 25, seed=0) == subset != label_subset(labels, 25, seed=1)
    tiny = label_subset(labels, 3, seed=0)
    assert {labels[i] for i in tiny} == {"anomalous", "normal"}  # even 3 labels hold an anomaly
    assert label_subset(labels, None, 0) == list(range(100)) == label_subset(labels, 500, 0)


def test_seeds_parse_default_to_the_data_seed_and_name_their_points():
    assert parse_seeds(None, 7) == [7] and parse_seeds("0, 1,1,2", 7) == [0, 1, 2]
    with pytest.raises(ConfigError, match="--curve-seeds: '-1'"):
        parse_seeds("0,-1", 0)
    assert point_name(100, 0, 0) == "n100" and point_name(100, 2, 0) == "n100-s2"  # the old curves' folders resume


def test_sft_steps_are_epochs_over_the_subset_capped_at_the_full_run():
    assert sft_steps_for(25, 8, 4.0, 150) == 13 and sft_steps_for(2000, 8, 4.0, 150) == 150
    assert sft_steps_for(1, 8, 0.1, 150) == 1


def test_the_curve_is_written_as_table_json_and_plot(tmp_path):
    block = {"f1_ci": {"value": 0.5, "low": 0.4, "high": 0.6}, "f1_at_threshold": None, "roc_auc": None}
    points = [
        {"labels": n, "anomalous": 2, "sft_steps": 3, "scorers": {"sft/fast": block, "baseline: keyword": block}}
        for n in (25, 50)
    ]
    write_curve(tmp_path, points)
    assert json.loads((tmp_path / "curve.json").read_text()) == points
    table = (tmp_path / "curve.md").read_text()
    assert "| 25 (2) |  | 3 | 0.500 [0.40, 0.60] | 0.500 [0.40, 0.60] |" in table  # a curve from before seeds
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def _block(value, low=None, high=None, threshold=None):
    f1 = {"value": value, "low": low, "high": high}
    return {"f1_ci": f1, "f1_at_threshold": threshold, "roc_auc": None}


def test_seeds_of_a_budget_are_averaged_with_their_spread_and_verdicts_listed(tmp_path):
    thresholded = {"value": 0.6, "low": 0.5, "high": 0.7}
    points = [
        {
            "labels": 100,
            "seed": 0,
            "anomalous": 9,
            "sft_steps": 38,
            "validation_rows": 196,
            "scorers": {"sft/fast": _block(0.0, 0.0, 0.0, threshold={"value": 0.3, "low": 0.2, "high": 0.4})},
        },
        {
            "labels": 100,
            "seed": 1,
            "anomalous": 9,
            "sft_steps": 38,
            "validation_rows": 196,
            "scorers": {"sft/fast": _block(0.5, 0.4, 0.6, threshold=thresholded)},
        },
        {
            "labels": 200,
            "seed": 0,
            "anomalous": 18,
            "sft_steps": 75,
            "validation_rows": 196,
            "scorers": {"sft/fast": _block(0.7, 0.6, 0.8)},
        },
    ]
    means = seed_means(points)
    assert len(means) == 1 and means[0]["labels"] == 100 and means[0]["seeds"] == [0, 1]  # 200 has one seed
    assert means[0]["scorers"]["sft/fast"] == pytest.approx({"mean": 0.45, "min": 0.3, "max": 0.6})
    write_curve(tmp_path, points)
    table = (tmp_path / "curve.md").read_text()
    assert "| 100 (9) | 1 | 38 | 0.600 [0.50, 0.70] |" in table  # the threshold F1 where there is one
    assert "| **100: mean of 2 seeds** (min-max) | | | 0.450 (0.300-0.600) |" in table
    assert "same 196 labelled validation rows" in table
    verdicts = table[table.index("Verdict F1") :]
    assert "| 100 (9) | 0 | 0.000 [0.00, 0.00] |" in verdicts and "| 200 (18) | 0 | 0.700 [0.60, 0.80] |" in verdicts
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def _metrics(f1):
    return {"info": {"validation_rows": 4}, "analysis": {"all": {"scorers": {"sft/fast": _block(f1)}}}}


def test_a_point_records_its_draw_and_each_scorers_numbers():
    subset = [{"label": "anomalous"}, {"label": "normal"}, {"label": "normal"}]
    point = curve_point(subset, 1, 3, 5, _metrics(0.5))
    assert point == {
        "labels": 3,
        "budget": 3,
        "seed": 1,
        "anomalous": 1,
        "sft_steps": 5,
        "validation_rows": 4,
        "scorers": {"sft/fast": _block(0.5)},
    }


def test_a_curve_is_reanalysed_point_by_point_on_the_subsets_it_drew(tmp_path, monkeypatch):
    from cluster.config import parse_config

    cfg = parse_config({"data": {"paths": ["x.log"]}, "model": {"path": "m"}})
    train = [{"id": str(i), "label": "anomalous" if i % 10 == 0 else "normal"} for i in range(40)]
    monkeypatch.setattr("cluster.stages.ensure_data", lambda cfg: {"paths": {"train": "t"}})
    monkeypatch.setattr("pipelines.building.dataset.load_examples", lambda path: train)
    calls = []

    def reanalyse(cfg, out, data, limit, add, subset):
        calls.append((Path(out).name, add, [row["id"] for row in subset]))
        return _metrics(len(calls) / 10)

    monkeypatch.setattr("cluster.reanalysis.reanalyse", reanalyse)
    written = [  # one point from before seeds and budgets, one seeded, one of every row
        {"labels": 10, "seed": None, "anomalous": 1, "sft_steps": 4, "scorers": {}},
        {"labels": 10, "budget": 10, "seed": 2, "anomalous": 1, "sft_steps": 4, "scorers": {}},
        {"labels": 40, "budget": None, "seed": None, "anomalous": 4, "sft_steps": 9, "scorers": {}},
    ]
    (tmp_path / "curve.json").write_text(json.dumps(written))
    curve = reanalyse_label_curve(cfg, str(tmp_path), add_baselines=True)
    data_seed = cfg.data.seed
    labels = [row["label"] for row in train]
    assert [name for name, _, _ in calls] == [point_name(10, data_seed, data_seed), point_name(10, 2, data_seed), "n40"]
    assert calls[0][2] == [str(i) for i in label_subset(labels, 10, data_seed)] and all(add for _, add, _ in calls)
    assert calls[1][2] == [str(i) for i in label_subset(labels, 10, 2)] != calls[0][2]
    assert [p["seed"] for p in curve["points"]] == [None, 2, None]  # as written: an old curve stays one
    assert [p["sft_steps"] for p in curve["points"]] == [4, 4, 9]
    assert json.loads((tmp_path / "curve.json").read_text())[1]["scorers"]["sft/fast"]["f1_ci"]["value"] == 0.2
    written[1]["labels"] = 12  # a point this train split cannot draw again
    (tmp_path / "curve.json").write_text(json.dumps(written))
    with pytest.raises(ConfigError, match="the 12-label point draws 10 rows"):
        reanalyse_label_curve(cfg, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is --out a label curve"):
        reanalyse_label_curve(cfg, str(tmp_path / "none"))


def test_a_curve_grows_by_the_points_a_run_adds_and_replaces_those_it_draws_again():
    def point(labels: int, seed: int | None, f1: float) -> dict:
        return {"labels": labels, "seed": seed, "scorers": {"a/fast": {"f1_ci": {"value": f1}}}}

    written = [point(100, 0, 0.4), point(100, 1, 0.2), point(200, 0, 0.6), point(1765, None, 0.7)]
    new = [point(25, 0, 0.1), point(100, 1, 0.3), point(1765, 0, 0.65)]
    merged = merged_points(written, new)
    assert [(p["labels"], p["seed"]) for p in merged] == [
        (25, 0),
        (100, 0),
        (100, 1),
        (200, 0),
        (1765, None),
        (1765, 0),
    ]
    assert merged[2]["scorers"]["a/fast"]["f1_ci"]["value"] == 0.3  # the redrawn point replaces the written one
    assert merged_points([], new) == sorted(new, key=lambda p: p["labels"])
