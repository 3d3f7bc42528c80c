"""Two arms from two reports on the same rows: paired bootstrap, refusals on mismatched rows."""

import json

import pytest

from evaluation.paired import load_side, paired, render


def _report(folder, arm, mode, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "predictions.jsonl").open("w") as f:
        for row_id, label, verdict, score in rows:
            record = {"arm": arm, "mode": mode, "id": row_id, "label": label, "verdict": verdict, "score": score}
            f.write(json.dumps(record) + "\n")
        f.write(json.dumps({"arm": "other", "mode": mode, "id": "x", "label": "normal", "verdict": None}) + "\n")
    return f"{folder}:{arm}/{mode}"


LABELS = ["anomalous"] * 20 + ["normal"] * 80


def test_a_perfect_arm_beats_a_coin_outside_the_interval(tmp_path):
    perfect = [(f"r{i}", y, y, 1.0 if y == "anomalous" else 0.0) for i, y in enumerate(LABELS)]
    coin = [(f"r{i}", y, "anomalous" if i % 2 else "normal", 0.5) for i, y in enumerate(LABELS)]
    result = paired(load_side(_report(tmp_path / "a", "coin", "fast", coin)),
                    load_side(_report(tmp_path / "b", "sft", "fast", perfect)))  # fmt: skip
    assert result["n"] == 100 and result["positives"] == 20
    assert result["second"]["f1_ci"]["value"] == 1.0
    assert result["second_minus_first"]["f1"] == "win"
    assert "second - first: F1" in render(result)


def test_the_same_predictions_tie(tmp_path):
    rows = [(f"r{i}", y, "anomalous" if i % 3 == 0 else "normal", (i % 7) / 7) for i, y in enumerate(LABELS)]
    result = paired(load_side(_report(tmp_path / "a", "sft", "fast", rows)),
                    load_side(_report(tmp_path / "b", "sft", "fast", rows)))  # fmt: skip
    assert result["second_minus_first"]["f1"] == "tie"
    assert result["second_minus_first"]["f1_difference"]["value"] == 0.0


def test_reports_of_other_rows_or_labels_are_refused(tmp_path):
    rows = [(f"r{i}", y, "normal", 0.1) for i, y in enumerate(LABELS)]
    first = load_side(_report(tmp_path / "a", "sft", "fast", rows))
    with pytest.raises(ValueError, match="different rows"):
        paired(first, load_side(_report(tmp_path / "b", "sft", "fast", rows[:-1])))
    flipped = [(i, "normal" if y == "anomalous" else "anomalous", v, s) for i, y, v, s in rows]
    with pytest.raises(ValueError, match="not the same split"):
        paired(first, load_side(_report(tmp_path / "c", "sft", "fast", flipped)))


def test_a_bad_side_names_what_is_wrong(tmp_path):
    spec = _report(tmp_path / "a", "sft", "fast", [("r0", "normal", "normal", 0.1)])
    with pytest.raises(ValueError, match="REPORT_DIR:ARM/MODE"):
        load_side(str(tmp_path / "a"))
    with pytest.raises(ValueError, match="no predictions of arm 'sft' in mode 'reason'"):
        load_side(spec.replace("/fast", "/reason"))
    with pytest.raises(FileNotFoundError):
        load_side(f"{tmp_path / 'none'}:sft/fast")


def _reasoned(folder, arm, grounded_share: float):
    """Reasoning-mode records: every anomalous row flagged with one citation, grounded on the first share of them."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "predictions.jsonl").open("w") as f:
        for i, y in enumerate(LABELS):
            grounded = i < grounded_share * 20 if y == "anomalous" else True
            record = {"arm": arm, "mode": "reason", "id": f"r{i}", "label": y, "verdict": y, "well_formed": True,
                      "rationale": "L1 \"x\" so", "citations": [{"lines": [1, 1], "grounded": grounded}]}  # fmt: skip
            f.write(json.dumps(record) + "\n")
    return f"{folder}:{arm}/reason"


def test_faithfulness_is_compared_over_all_rationales_and_anomalous_verdicts(tmp_path):
    result = paired(load_side(_reasoned(tmp_path / "a", "sft", 0.2)), load_side(_reasoned(tmp_path / "b", "grpo", 1.0)))
    anomalous, everything = result["faithful"]["anomalous"], result["faithful"]["all"]
    assert anomalous["judged"] == [20, 20] and anomalous["first"]["value"] == pytest.approx(0.2)
    assert anomalous["difference"]["value"] == pytest.approx(0.8) and anomalous["verdict"] == "win"
    assert everything["first"]["value"] == pytest.approx(0.84) and everything["second"]["value"] == 1.0
    assert "faithful (anomalous rationales; 20 / 20 judged)" in render(result)
    fast = [(f"r{i}", y, y, 0.5) for i, y in enumerate(LABELS)]  # answer-first: no rationale, nothing to compare
    both_fast = paired(
        load_side(_report(tmp_path / "c", "s", "fast", fast)), load_side(_report(tmp_path / "d", "t", "fast", fast))
    )
    assert both_fast["faithful"] is None and "faithful (" not in render(both_fast)


def test_sides_called_at_their_own_validation_thresholds_are_compared_too(tmp_path):
    # both answer `normal` everywhere, but b's scores rank every anomaly first and its report chose a cut at 0.3
    low = [(f"r{i}", y, "normal", 0.1 if y == "normal" else 0.05) for i, y in enumerate(LABELS)]
    high = [(f"r{i}", y, "normal", 0.1 if y == "normal" else 0.4) for i, y in enumerate(LABELS)]
    a, b = _report(tmp_path / "a", "sft", "fast", low), _report(tmp_path / "b", "sft", "fast", high)
    assert "second_minus_first_at_threshold" not in paired(load_side(a), load_side(b))  # no metrics.json: none
    for folder, threshold in ((tmp_path / "a", 0.05), (tmp_path / "b", 0.3)):
        analysis = {"all": {"scorers": {"sft/fast": {"threshold": threshold}}}}
        (folder / "metrics.json").write_text(json.dumps({"analysis": analysis}))
    result = paired(load_side(a), load_side(b))
    assert result["second_minus_first"]["f1"] == "tie"  # the verdicts are the same
    at = result["second_minus_first_at_threshold"]
    assert result["second"]["f1_at_threshold"]["value"] == 1.0 and at["f1"] == "win"
    assert result["first"]["f1_at_threshold"]["value"] == pytest.approx(1 / 3)  # 0.05 calls every row anomalous
    assert "at the validation thresholds: first 0.333" in render(result)
    normals = LABELS.count("normal")  # every one a false alarm of the first side only
    assert at["errors"] == {
        "f1_either_right": 1.0,
        "both": 0,
        "both_false_alarms": 0,
        "both_misses": 0,
        "this_only": 0,
        "baseline_only": normals,
    }
    assert render(result).endswith(
        f"(win); wrong: both 0, second only 0, first only {normals} (better call on every row: F1 1.000)"
    )
