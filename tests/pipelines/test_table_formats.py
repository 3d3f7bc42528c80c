"""Tabular inputs: LogLead event parquet, template CSVs and label CSVs become line records, or fail by name."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.reading.table_formats import (
    LINE_SCHEMA,
    check_loglead_events,
    loglead_lines,
    read_loglead_table,
    read_session_labels,
    read_template_records,
)

REPO = Path(__file__).resolve().parents[2]
LOGLEAD_EVENTS = REPO / "data" / "hdfs_loglead" / "hdfs_events_2percent.parquet"
LOGLEAD_LABELS = REPO / "data" / "hdfs_loglead" / "hdfs_seqs_2percent_labels.csv"


def events_table(rows: int = 3) -> pa.Table:
    stamp = datetime(2008, 11, 9, 20, 35, 30)
    return pa.table(
        {
            "m_message": [f"Receiving block blk_{i} src: /10.0.0.{i}:50010" for i in range(rows)],
            "seq_id": [f"blk_{i % 2}" for i in range(rows)],
            "m_timestamp": pa.array([stamp] * rows, pa.timestamp("us")),
            "level": ["INFO"] * rows,
            "component": ["dfs.DataNode$DataXceiver:"] * rows,
            "extra": ["ignored"] * rows,
        }
    )


def test_loglead_rows_become_line_records():
    out = loglead_lines(events_table(), "events.parquet", first_offset=5)
    assert out.schema == LINE_SCHEMA
    first = out.to_pylist()[0]
    assert first == {
        "source": "events.parquet",
        "offset": 5,
        "label": None,
        "timestamp": 1226262930.0,  # 2008-11-09 20:35:30, read as UTC like raw HDFS lines
        "node": None,
        "level": "INFO",
        "component": "dfs.DataNode$DataXceiver",
        "content": "Receiving block blk_0 src: /10.0.0.0:50010",
        "block_ids": ["blk_0"],
    }
    assert loglead_lines(events_table(), "e").column("offset").to_pylist() == [-1, -1, -1]


def test_bundled_loglead_sample_reads_whole():
    table = read_loglead_table(LOGLEAD_EVENTS)
    assert table.num_rows == 187_497 and table.column("offset").to_pylist()[-1] == 187_496
    labels = read_session_labels(LOGLEAD_LABELS)
    assert len(labels) == 9_200 and sum(verdict == "anomalous" for verdict in labels.values()) == 319


def test_loglead_bad_input_names_the_file_and_the_field(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"data.paths: .*missing.parquet: no such file"):
        check_loglead_events(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    pq.write_table(events_table().drop_columns(["seq_id", "level"]), bad)
    with pytest.raises(ValueError, match=r"bad.parquet: .*missing \['seq_id', 'level'\]"):
        check_loglead_events(bad)
    text = tmp_path / "text.parquet"
    text.write_text("not parquet")
    with pytest.raises(ValueError, match="text.parquet: not a parquet file"):
        check_loglead_events(text)
    stamps = tmp_path / "stamps.parquet"
    pq.write_table(events_table().set_column(2, "m_timestamp", pa.array(["x"] * 3)), stamps)
    with pytest.raises(ValueError, match="m_timestamp must be a timestamp"):
        check_loglead_events(stamps)
    empty = tmp_path / "empty.parquet"
    pq.write_table(events_table(0), empty)
    with pytest.raises(ValueError, match="empty.parquet: no events"):
        read_loglead_table(empty)


def test_session_labels_csv_in_both_layouts(tmp_path: Path):
    hdfs = tmp_path / "anomaly_label.csv"
    hdfs.write_text("BlockId,Label\nblk_1,Normal\nblk_-2,Anomaly\n")
    assert read_session_labels(hdfs) == {"blk_1": "normal", "blk_-2": "anomalous"}
    loglead = tmp_path / "seqs.csv"
    loglead.write_text("seq_id,Label\nblk_1, anomaly\n")
    assert read_session_labels(loglead) == {"blk_1": "anomalous"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seq,Label\nblk_1,Normal\n", r"header must be seq_id,Label or BlockId,Label, got \['seq', 'Label'\]"),
        ("seq_id,Label\nblk_1,Normal\nblk_2,Broken\n", "line 3: Label must be Normal or Anomaly, got 'Broken'"),
        ("seq_id,Label\n,Normal\n", "line 2: empty seq_id"),
        ("seq_id,Label\n", "no labelled sessions"),
        ("", "header must be"),
    ],
)
def test_bad_label_csv_names_file_line_and_field(tmp_path: Path, text: str, message: str):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_session_labels(path)
    assert str(err.value).startswith(f"data.labels_path: {path}: ")
    with pytest.raises(FileNotFoundError, match="data.labels_path: .*nope.csv: no such file"):
        read_session_labels(tmp_path / "nope.csv")


def test_template_csv_rows_are_single_line_records(tmp_path: Path):
    path = tmp_path / "templates.csv"
    path.write_text('log,label\n"MACHINE CHECK <*> <*> iar 0x00000000, lr <*>",0\n<*> exited abnormally,1\n')
    records = read_template_records(path)
    assert [(r["content"], r["label"], r["offset"]) for r in records] == [
        ("MACHINE CHECK <*> <*> iar 0x00000000, lr <*>", "-", 0),
        ("<*> exited abnormally", "abnormal", 1),
    ]
    assert set(records[0]) == set(LINE_SCHEMA.names)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("message,label\nx,0\n", r"header must have columns log,label, got \['message', 'label'\]"),
        ("log,label\nx,0\ny,2\n", "line 3: label must be 0 or 1, got '2'"),
        ("log,label\nx,\n", "line 2: label must be 0 or 1, got ''"),
        ("log,label\n", "no rows"),
    ],
)
def test_bad_template_csv_names_file_line_and_field(tmp_path: Path, text: str, message: str):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_template_records(path)
    assert str(err.value).startswith(f"data.paths: {path}: ")
