"""Session grouping, labels and the chronological split."""

from __future__ import annotations

import pytest

from pipelines.sessions.grouping import (
    Session,
    anomaly_lines,
    anomaly_templates,
    block_sessions,
    carries_anomaly,
    chronological_split,
    fixed_windows,
    mark_anomaly_lines,
    order_by_time,
    session_label,
    stratified_train,
    time_windows,
    train_count,
)
from pipelines.templates.miner import UNSEEN_ID


def test_fixed_windows_stream_and_keep_the_tail():
    consumed = []

    def rows():
        for i in range(7):
            consumed.append(i)
            yield {"i": i}

    windows = fixed_windows(rows(), 3)
    assert [row["i"] for row in next(windows)] == [0, 1, 2]
    assert consumed == [0, 1, 2]  # streaming: nothing read ahead of the first window
    assert [[row["i"] for row in window] for window in windows] == [[3, 4, 5], [6]]
    with pytest.raises(ValueError):
        next(fixed_windows([], 0))


def test_session_label():
    assert session_label([{"label": "-"}, {"label": "-"}]) == "normal"
    assert session_label([{"label": None}]) == "normal"
    assert session_label([{"label": "-"}, {"label": "KERNDTLB"}]) == "anomalous"


def test_block_sessions_group_by_first_appearance():
    rows = [
        {"n": 0, "block_ids": ["blk_2"]},
        {"n": 1, "block_ids": []},
        {"n": 2, "block_ids": ["blk_1", "blk_2"]},
        {"n": 3, "block_ids": ["blk_9"]},
    ]
    sessions = block_sessions(rows, {"blk_1": "anomalous", "blk_2": "normal"})
    assert [s.id for s in sessions] == ["blk_2", "blk_1", "blk_9"]
    assert [[line["n"] for line in s.lines] for s in sessions] == [[0, 2], [2], [3]]
    assert [s.label for s in sessions] == ["normal", "anomalous", None]


def test_chronological_split_keeps_order():
    train, test = chronological_split(list(range(100)), 0.7)
    assert train == list(range(70)) and test == list(range(70, 100))


@pytest.mark.parametrize("n, fraction, expected", [(0, 0.7, 0), (1, 0.7, 1), (2, 0.99, 1), (2, 0.01, 1), (10, 0.75, 8)])
def test_train_count_keeps_both_sides(n: int, fraction: float, expected: int):
    assert train_count(n, fraction) == expected


def test_blocks_ordered_by_time_lines_stable():
    a = Session("a", [{"n": 0, "timestamp": 5.0}, {"n": 1, "timestamp": 3.0}, {"n": 2, "timestamp": 3.0}], "normal")
    b = Session("b", [{"n": 3, "timestamp": 4.0}, {"n": 4, "timestamp": None}], "normal")
    ordered = order_by_time([a, b])
    assert [s.id for s in ordered] == ["a", "b"]  # a starts at 3.0 once its lines are sorted
    assert [line["n"] for line in a.lines] == [1, 2, 0] and [line["n"] for line in b.lines] == [3, 4]


def test_anomaly_templates_come_from_anomalous_and_never_normal_sessions():
    def session(label, *ids):
        return Session(label, [{"template_id": i, "template": f"t{i}"} for i in ids], label)

    train = [session("normal", 1, 2), session("anomalous", 1, 3, 4, UNSEEN_ID, None), session("anomalous", 4, 5)]
    train.append(Session("x", [{"template_id": 5}], None))  # unlabelled: neither side
    assert anomaly_templates(train) == {3: "t3", 4: "t4", 5: "t5"}


def test_mark_anomaly_lines_by_line_labels_or_templates():
    lines = [{"label": "-", "template_id": 1}, {"label": "KERNDTLB", "template_id": 2}, {"label": None}]
    assert [carries_anomaly(line) for line in lines] == [False, True, False]  # before marking: own label
    mark_anomaly_lines(lines, None)
    assert anomaly_lines(lines) == [2]
    mark_anomaly_lines(lines, {1: "t1"})
    assert anomaly_lines(lines) == [1] and lines[1]["carries_anomaly"] is False


def test_stratified_train_is_seeded_and_per_label():
    labels = ["normal"] * 90 + ["anomalous"] * 10
    trains = stratified_train(labels, 0.7, seed=3)
    assert trains == stratified_train(labels, 0.7, seed=3) != stratified_train(labels, 0.7, seed=4)
    assert sum(trains[:90]) == 63 and sum(trains[90:]) == 7
    assert stratified_train(["anomalous", "normal", "normal"], 0.7, 0).count(True) == 2


def test_template_profile_tolerates_rare_normal_occurrences_and_finds_expected_events():
    from pipelines.sessions.grouping import template_profile

    def session(label, *ids):
        return Session(label, [{"template_id": i, "template": f"t{i}"} for i in ids], label)

    normal = [session("normal", 1, 2) for _ in range(199)] + [session("normal", 1, 3)]  # t3: 0.5% of normal
    train = normal + [session("anomalous", 1, 3), session("anomalous", 2, 4)]
    strict = template_profile(train, max_normal_share=0.0, expected_share=0.99)
    tolerant = template_profile(train, max_normal_share=0.01, expected_share=0.99)
    assert strict.indicative == {4: "t4"}
    assert tolerant.indicative == {3: "t3", 4: "t4"}
    assert tolerant.expected == {1: "t1", 2: "t2"}  # t2 is in 199 of 200 normal sessions


def test_time_windows_round_times_down_and_keep_rows_without_time_out():
    rows = [
        {"timestamp": 125.0, "i": 0},
        {"timestamp": 61.0, "i": 1},
        {"timestamp": None, "i": 2},
        {"timestamp": 119.9, "i": 3},
        {"timestamp": 120.0, "i": 4},
        {"timestamp": 60.0, "i": 5},
        {"timestamp": 120.0, "i": 6},
    ]
    windows = [(start, [row["i"] for row in lines]) for start, lines in time_windows(rows, 60)]
    assert windows == [(60, [5, 1, 3]), (120, [4, 6, 0])]  # by time, ties in input order
