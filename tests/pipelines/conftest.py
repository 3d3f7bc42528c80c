"""Shared fixtures for pipelines tests: the bundled BGL sample, parsed and templated without Ray."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.reading.log_formats import parse_line
from pipelines.templates.miner import LogTemplateMiner

BGL_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "bgl" / "BGL_2k.log"


@pytest.fixture(scope="session")
def bgl_sample() -> Path:
    return BGL_SAMPLE


@pytest.fixture(scope="session")
def bgl_raw_lines() -> list[str]:
    return BGL_SAMPLE.read_bytes().decode("utf-8").split("\n")


@pytest.fixture(scope="session")
def bgl_miner(bgl_raw_lines: list[str]) -> LogTemplateMiner:
    return LogTemplateMiner.fit(parse_line(text, "bgl")["content"] for text in bgl_raw_lines)


@pytest.fixture(scope="session")
def bgl_lines(bgl_raw_lines: list[str], bgl_miner: LogTemplateMiner) -> list[dict]:
    """Parsed, templated BGL lines in file order, as the Ray pipeline would produce them."""
    lines = []
    for text in bgl_raw_lines:
        line = parse_line(text, "bgl")
        line["template_id"], line["template"] = bgl_miner.match(line["content"])
        lines.append(line)
    return lines


@pytest.fixture
def loglead_files(tmp_path: Path) -> tuple[Path, Path]:
    """A small LogLead events file whose rows are out of time order, and its labels (blk_9 unlabelled)."""
    rows = [  # (seq_id, second, message, level)
        ("blk_2", 30, "Receiving block blk_2 src: /10.0.0.1:1 dest: /10.0.0.1:2", "INFO"),
        ("blk_1", 20, "Receiving block blk_1 src: /10.0.0.1:1 dest: /10.0.0.1:2", "INFO"),
        ("blk_2", 25, "BLOCK* NameSystem.allocateBlock: /user/a. blk_2", "INFO"),
        ("blk_1", 21, "Exception in receiveBlock for block blk_1 java.io.IOException", "WARN"),
        ("blk_3", 40, "Receiving block blk_3 src: /10.0.0.1:1 dest: /10.0.0.1:2", "INFO"),
        ("blk_9", 10, "Receiving block blk_9 src: /10.0.0.1:1 dest: /10.0.0.1:2", "INFO"),
        ("blk_3", 41, "Exception in receiveBlock for block blk_3 java.io.IOException", "WARN"),
        ("blk_4", 50, "Receiving block blk_4 src: /10.0.0.1:1 dest: /10.0.0.1:2", "INFO"),
    ]
    table = pa.table(
        {
            "date": ["081109"] * len(rows),
            "m_message": [row[2] for row in rows],
            "seq_id": [row[0] for row in rows],
            "m_timestamp": pa.array([datetime(2008, 11, 9, 20, 35, row[1]) for row in rows], pa.timestamp("us")),
            "level": [row[3] for row in rows],
            "component": ["dfs.DataNode$DataXceiver:"] * len(rows),
        }
    )
    events = tmp_path / "events.parquet"
    pq.write_table(table, events)
    labels = tmp_path / "labels.csv"
    labels.write_text("seq_id,Label\nblk_1,Anomaly\nblk_2,Normal\nblk_3,Anomaly\nblk_4,Normal\n")
    return events, labels
