"""`cluster.reanalysis`'s pure parts: predictions back into scorers, and what counts as a number that moved."""

import json

import pytest

from cluster.config import ConfigError
from cluster.reanalysis import arm_scores, moved, validation_thresholds


def test_moved_names_the_first_number_that_did_not_come_back_and_ignores_additions():
    old = {"all": {"scorers": {"a/fast": {"roc_auc": {"value": 0.9}, "threshold": 0.48822247913239980}}}}
    same = {"all": {"scorers": {"a/fast": {"roc_auc": {"value": 0.9}, "threshold": 0.48822247913239913}}}}
    assert moved(old, same) is None  # a float's last digits (refitted baselines) are not a move
    grown = json.loads(json.dumps(same))
    grown["all"]["scorers"]["a/fast"]["vs_best_baseline_at_threshold"] = {"f1": "tie"}
    assert moved(old, grown) is None
    shifted = json.loads(json.dumps(same))
    shifted["all"]["scorers"]["a/fast"]["roc_auc"]["value"] = 0.91
    assert moved(old, shifted) == "analysis.all.scorers.a/fast.roc_auc.value"
    assert moved(old, {"all": {"scorers": {}}}) == "analysis.all.scorers.a/fast"
    assert moved({"best": "baseline: keyword"}, {"best": "baseline: domain_cues"}) == "analysis.best"


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_arm_scores_follow_the_rows_order_and_carry_the_thresholds(tmp_path):
    records = [
        {"arm": "sft", "mode": "fast", "id": "b", "verdict": "normal", "score": 0.2},
        {"arm": "sft", "mode": "fast", "id": "a", "verdict": "anomalous", "score": 0.9},
        {"arm": "sft", "mode": "reason", "id": "a", "verdict": None, "score": None},
        {"arm": "sft", "mode": "reason", "id": "b", "verdict": "normal", "score": None},
    ]
    _write(tmp_path / "p.jsonl", records)
    fast, reason = arm_scores(tmp_path / "p.jsonl", ["a", "b"], {"sft/fast": 0.6})
    assert (fast.name, fast.verdicts, fast.scores, fast.threshold) == (
        "sft/fast",
        ["anomalous", "normal"],
        [0.9, 0.2],
        0.6,
    )
    assert (reason.name, reason.verdicts, reason.threshold) == ("sft/reason", [None, "normal"], None)


def test_arm_scores_refuse_predictions_of_other_rows(tmp_path):
    _write(tmp_path / "p.jsonl", [{"arm": "sft", "mode": "fast", "id": "a", "verdict": "normal", "score": 0.1}])
    with pytest.raises(ConfigError, match=r"sft/fast predicts 1 rows, the rebuilt rows are 2 \(1 ids differ\)"):
        arm_scores(tmp_path / "p.jsonl", ["a", "b"], {})


def test_validation_thresholds_are_chosen_again_per_arm_and_mode(tmp_path):
    rows = [("a", "anomalous", 0.9), ("b", "anomalous", 0.7), ("c", "normal", 0.4), ("d", "normal", 0.8)]
    records = [{"arm": "sft", "mode": "fast", "id": i, "label": y, "score": s} for i, y, s in rows]
    records += [{"arm": "base", "mode": "fast", "id": i, "label": y, "score": None} for i, y, _ in rows]
    _write(tmp_path / "v.jsonl", records)
    # sft: cut 0.7 calls a, b, d (F1 0.8), cut 0.9 calls a (0.667), cut 0.8 calls a, d (0.5): 0.7
    assert validation_thresholds(tmp_path / "v.jsonl") == {"sft/fast": 0.7, "base/fast": 0.5}


def test_own_numbers_drop_only_the_comparisons_an_added_baseline_may_change():
    from cluster.reanalysis import own_numbers

    analysis = {
        "all": {
            "n": 10,
            "best_baseline": "baseline: keyword",
            "best_baseline_at_threshold": "baseline: keyword",
            "scorers": {
                "a/fast": {
                    "f1_ci": {"value": 0.5},
                    "vs_best_baseline": {"f1": "tie"},
                    "vs_best_baseline_at_threshold": {},
                },
                "baseline: keyword": {"f1_ci": {"value": 0.4}},
            },
        }
    }
    assert own_numbers(analysis) == {
        "all": {
            "n": 10,
            "scorers": {"a/fast": {"f1_ci": {"value": 0.5}}, "baseline: keyword": {"f1_ci": {"value": 0.4}}},
        }
    }
    grown = json.loads(json.dumps(analysis))
    grown["all"]["best_baseline"] = "baseline: embedding_logistic_regression"
    grown["all"]["scorers"]["baseline: embedding_logistic_regression"] = {"f1_ci": {"value": 0.6}}
    assert moved(own_numbers(analysis), own_numbers(grown)) is None
    grown["all"]["scorers"]["a/fast"]["f1_ci"]["value"] = 0.55
    assert moved(own_numbers(analysis), own_numbers(grown)) == "analysis.all.scorers.a/fast.f1_ci.value"
