"""End to end on local Ray: bundled BGL plus two malformed lines -> dead letters, summary, prompt files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.config import DataConfig
from pipelines.prompts import render_window
from pipelines.sessions import fixed_windows, session_label
from pipelines.templates import LogTemplateMiner

ROW_KEYS = {"id", "prompt", "label", "reference", "split", "source", "start_offset", "n_lines", "templates"}


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def inject_malformed(sample: Path, tmp_path: Path) -> tuple[str, list[dict]]:
    """Copy the sample with two bad lines inserted; return the path and the expected dead letters."""
    lines = sample.read_bytes().decode().split("\n")  # CRLF kept: each line but the last ends in \r
    bad = {700: "this is not a BGL line\r", 1500: lines[1499].replace(" 11", " xx", 1)}
    for index in sorted(bad, reverse=True):
        lines.insert(index, bad[index])
    path = tmp_path / "BGL_bad.log"
    path.write_bytes("\n".join(lines).encode())
    letters = []
    for text in (bad[700], bad[1500]):
        offset = sum(len(line.encode()) + 1 for line in lines[: lines.index(text)])
        letters.append({"source": str(path), "offset": offset, "text": text.rstrip("\r")})
    return str(path), letters


@pytest.mark.ray
def test_build_prompt_dataset_on_bundled_bgl(local_ray, tmp_path: Path, bgl_sample: Path, bgl_lines: list[dict]):
    from pipelines.build_dataset import build_prompt_dataset, load_examples

    path, expected_letters = inject_malformed(bgl_sample, tmp_path)
    cfg = DataConfig(
        paths=[path], output_dir=str(tmp_path / "out"), window_size=20, max_prompt_lines=12, shard_bytes=16384
    )
    summary = build_prompt_dataset(cfg)

    assert summary["lines_read"] == summary["good_lines"] + summary["malformed"] == 2002
    assert summary["malformed"] == 2 and summary["unmatched_lines"] == 0
    letters = [json.loads(row) for row in open(summary["paths"]["dead_letter"])]
    assert [{k: letter[k] for k in ("source", "offset", "text")} for letter in letters] == expected_letters
    assert letters[0]["reason"] == "bgl: expected at least 9 header fields, found 6"
    assert letters[1]["reason"] == "bgl: unix timestamp is not a number: 'xx29437983'"
    assert json.loads(open(summary["paths"]["summary"]).read()) == summary

    train, test = load_examples(summary["paths"]["train"]), load_examples(summary["paths"]["test"])
    splits = summary["splits"]
    assert (len(train), len(test)) == (splits["train"]["sessions"], splits["test"]["sessions"]) == (70, 30)
    rows = train + test
    assert all(set(row) == ROW_KEYS for row in rows)
    assert {row["label"] for row in train} == {row["label"] for row in test} == {"normal", "anomalous"}
    assert splits["train"]["anomalous"] + splits["test"]["anomalous"] == sum(
        row["label"] == "anomalous" for row in rows
    )

    # Chronological order survives sharding and parallel matching: the same windows as a plain in-process run.
    windows = list(fixed_windows(bgl_lines, 20))
    assert [row["label"] for row in rows] == [session_label(window) for window in windows]
    assert [row["prompt"] for row in rows] == [render_window(window, 12) for window in windows]
    assert [row["start_offset"] for row in rows[:2]] == [0, rows[1]["start_offset"]] and rows[1]["start_offset"] > 0
    assert summary["templates"] == LogTemplateMiner.load(summary["paths"]["miner_state"]).n_templates


HDFS_LINES = [
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating",
    "081109 203616 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /mnt/x. blk_2",
    "081109 203617 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.delete: nothing here",
    "081109 2036 35 INFO dfs.FSNamesystem: truncated header",
    "081109 203618 143 WARN dfs.DataNode: Got exception while serving blk_2 to /10.0.0.1",
    "081109 203619 143 INFO dfs.DataNode: Receiving block blk_3 src: /10.0.0.2:5000",
]


@pytest.mark.ray
def test_hdfs_block_sessions(local_ray, tmp_path: Path):
    from pipelines.build_dataset import build_prompt_dataset, load_examples

    log = tmp_path / "HDFS.log"
    log.write_text("\n".join(HDFS_LINES) + "\n")
    labels = tmp_path / "anomaly_label.csv"
    labels.write_text("BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\n")  # blk_3 has no label
    cfg = DataConfig(
        paths=[str(log)], format="hdfs", session="block", hdfs_labels_path=str(labels), output_dir=str(tmp_path / "o")
    )
    summary = build_prompt_dataset(cfg)
    assert (summary["lines_read"], summary["good_lines"], summary["malformed"]) == (6, 5, 1)
    assert summary["unlabelled_sessions"] == 1
    train, test = load_examples(summary["paths"]["train"]), load_examples(summary["paths"]["test"])
    assert [(row["id"], row["label"]) for row in train + test] == [("blk_1", "normal"), ("blk_2", "anomalous")]
    assert test[0]["reference"].startswith('L2 "Got exception while serving blk_2 to /10.0.0.1" (dfs.DataNode WARN)')


def test_session_kind_must_fit_the_format(tmp_path: Path):
    from pipelines.build_dataset import check_sessions

    with pytest.raises(ValueError, match="use session: block"):
        check_sessions(DataConfig(paths=["x"], format="hdfs", session="fixed"))
    with pytest.raises(ValueError, match="use session: block"):
        check_sessions(DataConfig(paths=["x"], format="bgl", session="block"))
    with pytest.raises(ValueError, match="hdfs_labels_path"):
        check_sessions(DataConfig(paths=["x"], format="hdfs", session="block"))


def test_raw_session_lines_reads_a_window_back_with_or_without_labels(tmp_path):
    from pipelines.build_dataset import raw_session_lines

    log = tmp_path / "bgl.log"
    log.write_bytes(b"- 1 a\r\nKERNDTLB 2 b\r\n- 3 c\r\n")
    row = {"source": str(log), "start_offset": len(b"- 1 a\r\n"), "n_lines": 2}
    assert raw_session_lines(row) == ["KERNDTLB 2 b", "- 3 c"]
    assert raw_session_lines(row, live=True) == ["2 b", "3 c"]
