"""The paired comparisons of `evaluation.analysis`: on verdicts, and each scorer at its validation threshold."""

from evaluation.analysis import Scored, analyse
from evaluation.report import analysis_table, errors_table
from evaluation.wins import table

LABELS = ["anomalous"] * 30 + ["normal"] * 70


def _keyword(hits: int, false_alarms: int) -> Scored:
    """A rule calling `hits` anomalies and `false_alarms` normals anomalous; scores are its verdicts (threshold 1)."""
    said = [i < hits for i in range(30)] + [i < false_alarms for i in range(70)]
    verdicts = ["anomalous" if s else "normal" for s in said]
    return Scored("baseline: keyword", verdicts, [float(s) for s in said], 1.0, baseline=True)


def test_an_under_calling_model_that_ranks_well_loses_on_verdicts_and_wins_at_its_threshold():
    timid = Scored("adapter/fast", ["normal"] * 100, [0.3] * 30 + [0.01] * 70, threshold=0.2)
    out = analyse([timid, _keyword(hits=18, false_alarms=6)], LABELS)
    block = out["scorers"]["adapter/fast"]
    assert block["f1_ci"]["value"] == 0.0 and block["f1_at_threshold"]["value"] == 1.0
    assert block["vs_best_baseline"]["f1"] == "loss"
    versus = block["vs_best_baseline_at_threshold"]
    assert versus["against"] == "baseline: keyword" and versus["f1"] == "win"
    assert abs(versus["f1_difference"]["value"] - (1.0 - 36 / 54)) < 1e-9  # keyword: tp 18, fp 6, fn 12


def test_the_thresholded_comparison_picks_the_baseline_best_at_its_own_threshold():
    model = Scored("adapter/fast", LABELS, [0.9] * 30 + [0.1] * 70, threshold=0.5)
    # verdicts all normal (F1 0) but a perfect ranking: best at its threshold, not on verdicts
    ranker = Scored("baseline: tfidf", ["normal"] * 100, [0.8] * 30 + [0.2] * 70, threshold=0.5, baseline=True)
    out = analyse([model, ranker, _keyword(hits=18, false_alarms=6)], LABELS)
    assert out["best_baseline"] == "baseline: keyword"
    assert out["best_baseline_at_threshold"] == "baseline: tfidf"
    versus = out["scorers"]["adapter/fast"]["vs_best_baseline_at_threshold"]
    assert versus["against"] == "baseline: tfidf" and versus["f1"] == "tie"
    assert versus["f1_difference"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert "vs_best_baseline_at_threshold" not in out["scorers"]["baseline: tfidf"]


def test_a_model_without_a_threshold_gets_no_thresholded_comparison():
    reasoning = Scored("adapter/reason", LABELS, None)
    out = analyse([reasoning, _keyword(hits=18, false_alarms=6)], LABELS)
    assert "vs_best_baseline_at_threshold" not in out["scorers"]["adapter/reason"]
    assert out["scorers"]["adapter/reason"]["vs_best_baseline"]["f1"] == "win"


def test_the_report_and_the_wins_table_show_both_comparisons():
    timid = Scored("adapter/fast", ["normal"] * 100, [0.3] * 30 + [0.01] * 70, threshold=0.2)
    out = analyse([timid, _keyword(hits=18, false_alarms=6)], LABELS)
    lines = analysis_table(out).split("\n")
    assert lines[0].endswith(
        "| F1 vs baseline: keyword | F1 at thresholds vs baseline: keyword | ROC-AUC vs baseline: keyword |"
    )
    assert lines[1].count("---") == 9
    assert lines[2].startswith("| adapter/fast | 0.000 [0.00, 0.00] |")
    assert lines[2].endswith(
        "(t=0.20) | 1.000 (t=0.30) | loss (-0.667 [-0.80, -0.51]) | win (0.333 [0.20, 0.49]) "
        "| win (0.243 [0.15, 0.34]) |"
    )
    # the best cut on these rows: the arm's 0.3 separates the classes; the keyword rule's only cut is its verdict
    assert out["scorers"]["adapter/fast"]["f1_any_threshold"] == {"value": 1.0, "threshold": 0.3}
    assert out["scorers"]["baseline: keyword"]["f1_any_threshold"] == {"value": 36 / 54, "threshold": 1.0}
    row = table([("toy", {"analysis": {"all": out}})]).split("\n")[2]
    assert row.endswith(
        "| **loss** (AUC: win) | 1.000 vs keyword 0.667: **win** (0.333 [0.20, 0.49]); wrong: both 0, LLM only 0, "
        "baseline only 18 (better call on every row: F1 1.000) "
        "| adapter/fast 1.000 vs keyword 0.757: **win** (0.243 [0.15, 0.34]) |"
    )
    assert row.count("|") == 11


def test_the_ranking_comparison_is_against_the_baseline_with_the_best_roc_auc_not_the_best_f1():
    arm = Scored("adapter/fast", ["normal"] * 100, [0.9] * 25 + [0.1] * 5 + [0.2] * 70, threshold=None)
    rule = _keyword(hits=24, false_alarms=2)  # the best F1, scored 0/1
    ranker = Scored("baseline: embedding", ["normal"] * 100, [0.8] * 28 + [0.1] * 2 + [0.3] * 70, baseline=True)
    out = analyse([arm, rule, ranker], LABELS)
    assert out["best_baseline"] == "baseline: keyword" and out["best_ranking_baseline"] == "baseline: embedding"
    versus = out["scorers"]["adapter/fast"]["vs_best_ranking_baseline"]
    assert versus["against"] == "baseline: embedding" and versus["roc_auc_difference"]["value"] < 0
    assert out["scorers"]["adapter/fast"]["vs_best_baseline"]["against"] == "baseline: keyword"
    no_scores = analyse([Scored("a/reason", ["normal"] * 100, None), rule], LABELS)
    assert "vs_best_ranking_baseline" not in no_scores["scorers"]["a/reason"]


def test_the_thresholded_comparison_counts_the_rows_both_get_wrong_and_those_only_one_does():
    # The arm at its threshold: 25 of 30 anomalies, 5 false alarms on rows 0-4 of the normals.
    arm_said = [i < 25 for i in range(30)] + [i < 5 for i in range(70)]
    arm = Scored("adapter/fast", ["normal"] * 100, [0.9 if s else 0.1 for s in arm_said], threshold=0.5)
    # keyword: 18 hits (misses 18-29, shared with the arm on 25-29), false alarms on normals 0-5 (shared 0-4)
    out = analyse([arm, _keyword(hits=18, false_alarms=6)], LABELS)
    errors = out["scorers"]["adapter/fast"]["vs_best_baseline_at_threshold"]["errors"]
    assert errors == {
        "f1_either_right": 50 / 60,  # the better call on every row: tp 25, fp 5, fn 5
        "both": 10,
        "both_false_alarms": 5,
        "both_misses": 5,
        "this_only": 0,
        "baseline_only": 8,
    }
    lines = errors_table(out).split("\n")
    assert lines[0] == (
        "| model | wrong, both it and baseline: keyword (false alarms / misses) | wrong, it only "
        "| wrong, baseline: keyword only | F1 with the better call on every row |"
    )
    assert lines[2] == "| adapter/fast | 10 (5 / 5) | 0 | 8 | 0.833 |"
    cell = table([("toy", {"analysis": {"all": out}})]).split("\n")[2].split(" | ")[-2]
    assert cell.endswith("; wrong: both 10, LLM only 0, baseline only 8 (better call on every row: F1 0.833)")
    assert errors_table(analyse([Scored("a/reason", ["normal"] * 100, None), _keyword(18, 6)], LABELS)) == ""
