"""Session grouping, labels and the chronological split."""

from __future__ import annotations

import pytest

from pipelines.sessions import block_sessions, chronological_split, fixed_windows, session_label, train_count


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
