"""`evaluation.threshold_rules`: the edge and midpoint rules compared on a report's kept validation scores."""

import json

import pytest

from evaluation.stats import best_threshold
from evaluation.threshold_rules import compare_rules, main


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _report(folder, validation, test):
    folder.mkdir()
    rec = lambda i, y, s: {"arm": "sft", "mode": "fast", "id": i, "label": y, "score": s, "verdict": None}  # noqa: E731
    _write(folder / "validation.jsonl", [rec(f"v{i}", y, s) for i, (y, s) in enumerate(validation)])
    _write(folder / "predictions.jsonl", [rec(f"t{i}", y, s) for i, (y, s) in enumerate(test)])


def test_midpoint_keeps_the_validation_calls_and_moves_the_cut_into_the_gap():
    labels = ["anomalous", "anomalous", "normal", "normal", "normal"]
    scores = [0.9, 0.6, 0.7, 0.2, None]  # None counts 0.5
    assert best_threshold(labels, scores) == 0.6
    assert best_threshold(labels, scores, "midpoint") == pytest.approx(0.55)
    assert best_threshold(["anomalous", "normal"], [0.2, 0.2], "midpoint") == pytest.approx(0.1)  # none below
    with pytest.raises(ValueError, match="threshold rule must be one of"):
        best_threshold(labels, scores, "middle")


def test_an_edge_cut_at_the_lowest_validation_anomaly_misses_test_anomalies_just_below_it(tmp_path, capsys):
    validation = [("anomalous", 0.99), ("anomalous", 0.995), ("normal", 0.1), ("normal", 0.2)]
    test = [("anomalous", 0.9), ("anomalous", 0.97), ("anomalous", 0.999)] + [("normal", 0.05)] * 7
    _report(tmp_path / "r", validation, test)
    (item,) = compare_rules(tmp_path / "r")
    assert item["thresholds"] == {"edge": 0.99, "midpoint": pytest.approx(0.595)}
    assert item["f1"]["edge"].value == pytest.approx(0.5) and item["f1"]["midpoint"].value == 1.0
    assert item["difference"].value == pytest.approx(0.5) and item["validation"] == (4, 2)
    assert main(["toy=" + str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "| toy | sft/fast | 4 (2) | 0.99 | 0.500 [" in out and "midpoint - edge over 1 arms: mean +0.500" in out


def test_a_report_without_validation_scores_is_refused(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    with pytest.raises(SystemExit):
        main(["old=" + str(tmp_path / "old")])
    assert "old has no validation.jsonl" in capsys.readouterr().err
