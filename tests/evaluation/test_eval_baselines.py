"""Baselines fit on a tiny synthetic train split: template 3 separates the classes."""

from __future__ import annotations

import typing

from evaluation.baselines import BASELINES, run_baselines
from evaluation.config import BaselineName, EvalConfig


def _row(i: int, label: str, template_ids: list[int], text: str) -> dict:
    return {"id": f"w{i}", "label": label, "template_ids": template_ids, "prompt": f"L1 KERNEL INFO: {text}"}


TRAIN = [
    _row(0, "normal", [1, 1, 2], "job started"),
    _row(1, "normal", [1, 2, 2], "job finished"),
    _row(2, "normal", [2, 1], "job started"),
    _row(3, "anomalous", [1, 3], "node went away"),
    _row(4, "anomalous", [3, 3, 2], "node went away"),
    _row(5, "normal", [1], "job finished"),
]
TEST = [
    _row(10, "anomalous", [1, 3, 99], "kernel panic on node"),  # id 99 was never seen in train: ignored
    _row(11, "normal", [2, 2, 1], "job FAILED twice"),  # `failed` is not the keyword `fail`
    _row(12, "anomalous", [3], "Connection Refused by peer"),
    _row(13, "normal", [99], "all fine"),
]


def _verdicts(train, cfg=None):
    return {r.name: r.verdicts for r in run_baselines(train, TEST, cfg or EvalConfig())}


def test_learned_baselines_find_the_separating_template():
    out = _verdicts(TRAIN)
    expected = ["anomalous", "normal", "anomalous", "normal"]
    assert out["logistic_regression"] == expected
    assert out["decision_tree"] == expected


def test_majority_and_keyword():
    out = _verdicts(TRAIN)
    assert out["majority"] == ["normal"] * 4
    assert out["keyword"] == ["anomalous", "normal", "anomalous", "normal"]
    out = _verdicts(TRAIN, EvalConfig(keywords=["twice"], baselines=["keyword"]))
    assert out == {"keyword": ["normal", "anomalous", "normal", "normal"]}


def test_one_class_train_is_reported_not_fatal():
    results = {r.name: r for r in run_baselines([r for r in TRAIN if r["label"] == "normal"], TEST, EvalConfig())}
    assert results["majority"].verdicts == ["normal"] * 4
    for name in ("logistic_regression", "decision_tree"):
        assert results[name].verdicts is None
        assert "one class only" in results[name].skipped


def test_rows_without_template_ids_skip_the_learned_baselines():
    train = [{k: v for k, v in row.items() if k != "template_ids"} for row in TRAIN]
    results = {r.name: r for r in run_baselines(train, TEST, EvalConfig())}
    assert "template_ids" in results["decision_tree"].skipped
    assert results["keyword"].verdicts is not None


def test_registry_matches_the_config_names():
    assert set(BASELINES) == set(typing.get_args(BaselineName)) == set(EvalConfig().baselines)


def test_tfidf_logistic_regression_learns_the_words():
    from evaluation.baselines import fit_tfidf_logistic_regression
    from evaluation.config import EvalConfig

    def row(text, label):
        return {"id": text, "prompt": f"L1: {text}", "label": label, "template_ids": [1]}

    train = [row(f"node {i} kernel panic detected", "anomalous") for i in range(5)]
    train += [row(f"job {i} completed successfully", "normal") for i in range(15)]
    predict = fit_tfidf_logistic_regression(train, EvalConfig())
    from evaluation.baselines import verdicts_at

    scores = predict([row("kernel panic on node 9", "anomalous"), row("job 99 completed", "normal")])
    assert verdicts_at(scores, 0.5) == ["anomalous", "normal"]


def test_baselines_score_and_take_their_threshold_from_validation():
    validation = [_row(20, "anomalous", [1, 3], "node went away"), _row(21, "normal", [1, 2], "job started")]
    by_name = {r.name: r for r in run_baselines(TRAIN, TEST, EvalConfig(), validation)}
    lr = by_name["logistic_regression"]
    assert len(lr.scores) == 4 and all(0 <= s <= 1 for s in lr.scores)
    assert lr.verdicts == ["anomalous" if s >= lr.threshold else "normal" for s in lr.scores]
    assert lr.scores[0] > lr.scores[1]  # the separating template raises the score
    assert by_name["domain_cues"].scores == [1.0, 1.0, 1.0, 0.0]  # panic, FAILED, Refused: faults; "all fine": none
