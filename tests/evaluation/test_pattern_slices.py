"""The pattern slices table: sessions showing a pattern per split and label, with the report's fast scores."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.pattern_slices import main, pattern_table

ROWS = {  # split -> (id, label, prompt)
    "train": [("a", "anomalous", "L1 ask to replicate\nL2 invalidSet"), ("b", "normal", "L1 ask to replicate")],
    "validation": [("c", "normal", "L1 ask to replicate"), ("d", "anomalous", "L1 ask to replicate invalidSet")],
    "test": [("e", "anomalous", "L1 ask to replicate invalidSet"), ("f", "normal", "L1 routine")],
}


def _report(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for split, rows in ROWS.items():
        (data / split).mkdir(parents=True)
        table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(("id", "label", "prompt"))})
        pq.write_table(table, data / split / "part-000000.parquet")
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps({"info": {"data_source": str(data / "test")}}))
    scores = {"c": 0.99, "d": 0.5, "e": 0.4, "f": 0.01}
    for name, ids in (("validation.jsonl", "cd"), ("predictions.jsonl", "ef")):
        records = [{"arm": "base", "mode": "fast", "id": i, "score": scores[i]} for i in ids]
        records += [{"arm": "base", "mode": "reason", "id": i, "score": 0.5} for i in ids]  # not a fast score
        (report / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return report


def test_counts_and_scores_per_split_and_label(tmp_path):
    table = pattern_table([("r", _report(tmp_path))], "to replicate", "invalidSet")
    rows = [line for line in table.splitlines() if line.startswith("| r |")]
    assert rows == [
        "| r | train | anomalous | 1 | 1 | 1 |  |",
        "| r | train | normal | 1 | 1 | 0 |  |",
        "| r | validation | anomalous | 1 | 1 | 1 | base/fast: min 0.500, mean 0.500, below 0.9: 1 |",
        "| r | validation | normal | 1 | 1 | 0 | base/fast: min 0.990, mean 0.990, below 0.9: 0 |",
        "| r | test | anomalous | 1 | 1 | 1 | base/fast: min 0.400, mean 0.400, below 0.9: 1 |",
        "| r | test | normal | 1 | 0 | 0 |  |",
    ]


def test_the_command_writes_the_table_and_refuses_a_folder_without_a_report(tmp_path, capsys):
    report = _report(tmp_path)
    out = tmp_path / "t.md"
    assert main(["to replicate", f"r={report}", "--out", str(out)]) == 0
    assert "| r | test | normal | 1 | 0 |  |  |" in out.read_text()
    with pytest.raises(SystemExit):
        main(["x", f"r={tmp_path}"])
    assert "has no metrics.json" in capsys.readouterr().err
    (report / "metrics.json").write_text(json.dumps({"info": {"data_source": str(tmp_path / "gone" / "test")}}))
    with pytest.raises(FileNotFoundError, match="is not here"):
        main(["x", f"r={report}"])
