"""The label curve's pure parts: budgets, subsets that keep both classes, SFT steps, the curve files."""

from __future__ import annotations

import json

import pytest

from cluster.config import ConfigError
from cluster.protocols import label_subset, parse_budgets, sft_steps_for, write_curve


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
    assert "| 25 (2) | 3 | 0.500 [0.40, 0.60] | 0.500 [0.40, 0.60] |" in table
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
