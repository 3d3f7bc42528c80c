"""On local Ray: BGL with malformed lines, HDFS blocks, LogLead parquet, template CSVs -> prompt files + settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cluster.environment import init_ray
from pipelines.config import DataConfig
from pipelines.prompts.render import render_window, shown_line_numbers
from pipelines.prompts.rows import ROW_FIELDS
from pipelines.sessions.grouping import anomaly_lines, session_label
from pipelines.templates.miner import LogTemplateMiner

ROW_KEYS = {
    "id",
    "prompt",
    "label",
    "reference",
    "split",
    "source",
    "start_offset",
    "n_lines",
    "templates",
    "template_ids",
    "anomaly_lines",
}
SETTINGS_KEYS = {
    "format",
    "session",
    "window_size",
    "max_prompt_tokens",
    "miner_file",
    "anomaly_templates",
    "expected_templates",
    "anomaly_lines_from",
    "token_counter",
    "time_window_s",
    "regex",
}


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    init_ray(None, 4, log_to_driver=False)  # closed: every port on loopback, token auth
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
    from pipelines.building.dataset import build_prompt_dataset, load_examples
    from pipelines.eval_data import load_eval_rows

    path, expected_letters = inject_malformed(bgl_sample, tmp_path)
    cfg = DataConfig(
        paths=[path], output_dir=str(tmp_path / "out"), window_size=20, max_prompt_tokens=160, shard_bytes=16384
    )
    summary = build_prompt_dataset(cfg)

    assert summary["lines_read"] == summary["good_lines"] + summary["malformed"] == 2002
    # The miner learns from the training period only (the first 71 windows: file lines 0-1419, dead letter at 700
    # included), so test lines of templates training never showed stay unmatched (id -1).
    file_line = [i + (i >= 700) + (i >= 1500) for i in range(len(bgl_lines))]
    trained_on = [line["content"] for line, n in zip(bgl_lines, file_line) if n < 71 * 20]
    assert len(trained_on) == 1419
    miner = LogTemplateMiner.fit(trained_on)
    bgl_lines = [
        dict(line, **dict(zip(("template_id", "template"), miner.match(line["content"])))) for line in bgl_lines
    ]
    unseen = sum(line["template_id"] == -1 for line in bgl_lines)
    assert summary["malformed"] == 2 and summary["unmatched_lines"] == unseen > 0
    assert all(line["template_id"] != -1 for line in bgl_lines[:1419])
    letters = [json.loads(row) for row in open(summary["paths"]["dead_letter"])]
    assert [{k: letter[k] for k in ("source", "offset", "text")} for letter in letters] == expected_letters
    assert letters[0]["reason"] == "bgl: expected at least 9 header fields, found 6"
    assert letters[1]["reason"] == "bgl: unix timestamp is not a number: 'xx29437983'"
    assert json.loads(open(summary["paths"]["summary"]).read()) == summary
    out = Path(summary["paths"]["summary"]).parent  # the build's report: the split table as the summary counts it
    assert "| train | 71 |" in (out / "report.md").read_text() and (out / "prompt_tokens.png").exists()

    train, test = load_examples(summary["paths"]["train"]), load_examples(summary["paths"]["test"])
    splits = summary["splits"]
    # Windows are 20 lines of the file: 2002 lines make 101 (the last holds 2), two of them a line short.
    assert (len(train), len(test)) == (splits["train"]["sessions"], splits["test"]["sessions"]) == (71, 30)
    rows = train + test
    assert all(set(row) == ROW_KEYS == set(ROW_FIELDS) for row in rows)
    assert {row["label"] for row in train} == {row["label"] for row in test} == {"normal", "anomalous"}
    assert splits["train"]["anomalous"] + splits["test"]["anomalous"] == sum(
        row["label"] == "anomalous" for row in rows
    )

    # Chronological order survives sharding and parallel matching: the same windows as a plain in-process run,
    # cut by line number in the file (the two dead letters at lines 700 and 1501 leave their windows short).
    windows = [[line for line, n in zip(bgl_lines, file_line) if n // 20 == w] for w in range(101)]
    assert [len(window) for window in windows].count(19) == 2 and len(windows[-1]) == 2
    assert [row["label"] for row in rows] == [session_label(window) for window in windows]
    assert [row["prompt"] for row in rows] == [render_window(window, 160) for window in windows]
    assert [row["anomaly_lines"] for row in rows] == [anomaly_lines(window) for window in windows]
    assert [row["template_ids"] for row in rows] == [[line["template_id"] for line in window] for window in windows]
    for row in train:  # the label is learnable from the prompt: an anomaly line is always shown
        assert (row["label"] == "anomalous") == bool(set(row["anomaly_lines"]) & shown_line_numbers(row["prompt"]))
    # Test windows hold lines of templates training never saw: each distinct masked content is a group of its
    # own, so a tight budget (160 here) can leave an anomaly line out, and the summary counts it.
    hidden = [
        r for r in test if r["label"] == "anomalous" and not set(r["anomaly_lines"]) & shown_line_numbers(r["prompt"])
    ]
    assert splits["test"]["anomalous_with_anomaly_lines_hidden"] == len(hidden)
    assert (
        splits["train"]["anomalous_without_anomaly_lines"]
        == splits["train"]["anomalous_with_anomaly_lines_hidden"]
        == 0
    )
    settings = json.loads(open(summary["paths"]["prompt_settings"]).read())
    assert set(settings) == SETTINGS_KEYS
    assert settings["format"] == "bgl" and settings["window_size"] == 20 and settings["max_prompt_tokens"] == 160
    assert settings["miner_file"] == "miner_state.json" and settings["anomaly_lines_from"] == "line_labels"
    assert settings["regex"] is None  # only format regex keeps its data.regex here
    # `logrl eval` on the same file renders with the run's miner and settings: the very same rows.
    eval_rows = load_eval_rows(f"bgl:{path}", cfg.output_dir)
    assert [dict(row, split=split) for row, split in zip(eval_rows, ["train"] * 71 + ["test"] * 30)] == rows
    assert [row["start_offset"] for row in rows[:2]] == [0, rows[1]["start_offset"]] and rows[1]["start_offset"] > 0
    assert summary["templates"] == LogTemplateMiner.load(summary["paths"]["miner_state"]).n_templates


@pytest.mark.ray
def test_a_bounded_drain_fit_learns_from_the_first_lines_only(
    local_ray, tmp_path: Path, bgl_sample: Path, bgl_lines: list[dict]
):
    from pipelines.building.dataset import build_prompt_dataset, load_examples
    from pipelines.templates.miner import UNSEEN_ID

    cfg = DataConfig(
        paths=[str(bgl_sample)], output_dir=str(tmp_path), window_size=20, shard_bytes=16384, drain_fit_lines=300
    )
    summary = build_prompt_dataset(cfg)
    miner = LogTemplateMiner.fit(line["content"] for line in bgl_lines[:300])  # in this process, same settings
    expected = [miner.match(line["content"])[0] for line in bgl_lines]
    rows = load_examples(summary["paths"]["train"]) + load_examples(summary["paths"]["test"])
    assert [template_id for row in rows for template_id in row["template_ids"]] == expected
    assert summary["unmatched_lines"] == expected.count(UNSEEN_ID) > 0  # counted, and every line kept
    assert (summary["drain_fit_lines"], summary["good_lines"], summary["templates"]) == (300, 2000, miner.n_templates)


@pytest.mark.ray
def test_time_windows_group_lines_by_the_hour_across_shards(local_ray, tmp_path: Path, bgl_sample: Path, bgl_lines):
    import math

    from pipelines.building.dataset import build_prompt_dataset, load_examples
    from pipelines.eval_data import load_eval_rows

    cfg = DataConfig(
        paths=[str(bgl_sample)],
        session="time",
        time_window_s=3600,
        output_dir=str(tmp_path / "out"),
        max_prompt_tokens=160,
        shard_bytes=16384,
    )
    summary = build_prompt_dataset(cfg)
    # The miner learns from the first 70% of the lines (the training period of a time-ordered log).
    miner = LogTemplateMiner.fit(line["content"] for line in bgl_lines[:1400])
    bgl_lines = [
        dict(line, **dict(zip(("template_id", "template"), miner.match(line["content"])))) for line in bgl_lines
    ]
    # Independently: each line's hour, lines of an hour in time order (then file order), hours in order.
    hours: dict[int, list[dict]] = {}
    for line in bgl_lines:
        hours.setdefault(math.floor(line["timestamp"] / 3600) * 3600, []).append(line)
    expected = [(start, sorted(hours[start], key=lambda line: line["timestamp"])) for start in sorted(hours)]
    train, test = load_examples(summary["paths"]["train"]), load_examples(summary["paths"]["test"])
    rows = train + test
    assert len(rows) == len(expected) == 456 and (len(train), len(test)) == (319, 137)
    assert [row["id"] for row in rows] == [f"t{start}" for start, _ in expected]
    assert [row["label"] for row in rows] == [session_label(lines) for _, lines in expected]
    assert [row["n_lines"] for row in rows] == [len(lines) for _, lines in expected]
    assert [row["prompt"] for row in rows] == [render_window(lines, 160) for _, lines in expected]
    assert [row["anomaly_lines"] for row in rows] == [anomaly_lines(lines) for _, lines in expected]
    anomalous = sum(session_label(lines) == "anomalous" for _, lines in expected)
    assert summary["splits"]["train"]["anomalous"] + summary["splits"]["test"]["anomalous"] == anomalous > 0
    assert (summary["good_lines"], summary["time_window_s"], summary["window_size"]) == (2000, 3600, None)
    settings = json.loads(open(summary["paths"]["prompt_settings"]).read())
    assert settings["time_window_s"] == 3600 and settings["anomaly_lines_from"] == "line_labels"
    eval_rows = load_eval_rows(f"bgl:{bgl_sample}", cfg.output_dir)  # `logrl eval` cuts the same windows
    assert [dict(row, split=r["split"]) for row, r in zip(eval_rows, rows, strict=True)] == rows


def test_time_windows_need_line_labels_and_time_stamps(tmp_path: Path):
    from pipelines.building.dataset import build_prompt_dataset

    with pytest.raises(ValueError, match="session: time needs line labels"):
        build_prompt_dataset(
            DataConfig(paths=["x"], format="hdfs", session="time", labels_path="l", output_dir=str(tmp_path))
        )
    with pytest.raises(ValueError, match="no `timestamp` group"):
        DataConfig(paths=["x"], format="regex", session="time", regex={"line": r"(?P<content>.*)"})


HDFS_LINES = [
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating",
    "081109 203616 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /mnt/x. blk_2",
    "081109 203617 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.delete: nothing here",
    "081109 2036 35 INFO dfs.FSNamesystem: truncated header",
    "081109 203618 143 WARN dfs.DataNode: Got exception while serving blk_2 to /10.0.0.1",
    "081109 203619 143 INFO dfs.DataNode: Receiving block blk_3 src: /10.0.0.2:5000",
    "081109 203620 148 INFO dfs.DataNode$PacketResponder: PacketResponder 2 for block blk_3 terminating",
    "081109 203621 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /mnt/y. blk_4",
    "081109 203622 143 WARN dfs.DataNode: Got exception while serving blk_4 to /10.0.0.3",
    "081109 203623 143 INFO dfs.DataNode: Receiving block blk_5 src: /10.0.0.2:5000",
]


@pytest.mark.ray
def test_hdfs_block_sessions_and_anomaly_templates_from_train(local_ray, tmp_path: Path):
    from pipelines.building.dataset import build_prompt_dataset, load_examples

    log = tmp_path / "HDFS.log"
    log.write_text("\n".join(HDFS_LINES) + "\n")
    labels = tmp_path / "anomaly_label.csv"
    labels.write_text("BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\nblk_3,Normal\nblk_4,Anomaly\n")  # blk_5: none
    cfg = DataConfig(
        paths=[str(log)],
        format="hdfs",
        session="block",
        labels_path=str(labels),
        train_fraction=0.5,
        output_dir=str(tmp_path / "o"),
    )
    summary = build_prompt_dataset(cfg)
    assert (summary["lines_read"], summary["good_lines"], summary["malformed"]) == (10, 9, 1)
    assert summary["unlabelled_sessions"] == 1 and summary["anomaly_templates"] == 2
    train, test = load_examples(summary["paths"]["train"]), load_examples(summary["paths"]["test"])
    assert [(row["id"], row["label"]) for row in train + test] == [
        ("blk_1", "normal"),
        ("blk_2", "anomalous"),
        ("blk_3", "normal"),
        ("blk_4", "anomalous"),
    ]
    # The miner learns from the first half of the lines (the training period): blk_4's allocateBlock line is unseen,
    # so only its exception line carries the anomaly.
    assert [row["anomaly_lines"] for row in train + test] == [[], [1, 2], [], [2]]
    assert test[1]["prompt"].split("\n") == [
        "L1 dfs.FSNamesystem INFO: BLOCK* NameSystem.allocateBlock: /mnt/y. <BLK>",  # unseen: its masked content
        "L2 dfs.DataNode WARN: Got exception while serving <BLK> to /<IP>",
    ]
    assert test[1]["reference"].startswith('L2 "Got exception while serving <BLK> to /<IP>" (dfs.DataNode WARN)')
    settings = json.loads(open(summary["paths"]["prompt_settings"]).read())
    assert settings["anomaly_lines_from"] == "anomaly_templates" and settings["window_size"] == 20
    assert [item["template"] for item in settings["anomaly_templates"]] == [
        "BLOCK* NameSystem.allocateBlock: /mnt/x. <BLK>",  # fitted on one line only
        "Got exception while serving <BLK> to /<IP>",
    ]
    assert summary["splits"]["test"]["anomalous_without_anomaly_lines"] == 0


@pytest.mark.ray
def test_loglead_parquet_blocks_in_time_order(local_ray, tmp_path: Path, loglead_files: tuple[Path, Path]):
    from pipelines.building.dataset import build_prompt_dataset, load_examples
    from pipelines.eval_data import load_eval_rows

    events, labels = loglead_files
    cfg = DataConfig(
        paths=[str(events)],
        format="loglead_hdfs",
        session="block",
        labels_path=str(labels),
        train_fraction=0.5,
        output_dir=str(tmp_path / "o"),
    )
    summary = build_prompt_dataset(cfg)
    assert (summary["good_lines"], summary["malformed"], summary["unlabelled_sessions"]) == (8, 0, 1)
    train, test = load_examples(summary["paths"]["train"]), load_examples(summary["paths"]["test"])
    rows = train + test
    assert [(row["id"], row["split"]) for row in rows] == [
        ("blk_1", "train"),
        ("blk_2", "train"),
        ("blk_3", "test"),
        ("blk_4", "test"),
    ]
    assert [row["start_offset"] for row in rows] == [1, 2, 4, 7]  # row index of each block's earliest event
    assert rows[1]["prompt"].split("\n")[0].startswith("L1 dfs.DataNode$DataXceiver INFO: BLOCK* NameSystem")
    assert [row["anomaly_lines"] for row in rows] == [[2], [], [2], []]
    assert rows[2]["reference"].startswith('L2 "Exception in receiveBlock for block <BLK>')
    eval_rows = load_eval_rows(f"loglead_hdfs:{events},{labels}", cfg.output_dir)
    assert [dict(row, split=other["split"]) for row, other in zip(eval_rows, rows)] == rows
    assert summary["splits"]["test"] == {
        "sessions": 2,
        "anomalous": 1,
        "anomalous_without_anomaly_lines": 0,
        "anomalous_with_anomaly_lines_hidden": 0,
    }


@pytest.mark.ray
def test_template_csv_sessions_with_a_stratified_split(local_ray, tmp_path: Path):
    from pipelines.building.dataset import build_prompt_dataset, load_examples

    path = tmp_path / "templates.csv"
    normal = [f"generating core.{i} from node <*>" for i in range(14)]
    abnormal = [f"<*> exited abnormally due to signal {i}" for i in range(6)]
    path.write_text("log,label\n" + "".join(f"{t},0\n" for t in normal) + "".join(f"{t},1\n" for t in abnormal))
    cfg = DataConfig(paths=[str(path)], format="templates", split="stratified", seed=1, output_dir=str(tmp_path / "o"))
    summary = build_prompt_dataset(cfg)
    assert summary["splits"]["train"]["sessions"] == 14 and summary["splits"]["train"]["anomalous"] == 4
    train, test = load_examples(summary["paths"]["train"]), load_examples(summary["paths"]["test"])
    assert len(train) + len(test) == 20 and all(row["n_lines"] == 1 for row in train + test)
    for row in train + test:
        assert row["prompt"].startswith("L1: ") and row["anomaly_lines"] == ([1] if row["label"] == "anomalous" else [])
    offsets = sorted(row["start_offset"] for row in train + test)
    assert offsets == list(range(20))
    assert json.loads(open(summary["paths"]["prompt_settings"]).read())["window_size"] == 1
    again = build_prompt_dataset(cfg.model_copy(update={"output_dir": str(tmp_path / "again")}))
    assert load_examples(again["paths"]["train"]) == train  # seeded

    # A validation slice comes out of training only; the miner learns from the training rows alone.
    held = build_prompt_dataset(cfg.model_copy(update={"output_dir": str(tmp_path / "v"), "validation_fraction": 0.3}))
    validation = load_examples(held["paths"]["validation"])
    assert {row["id"] for row in load_examples(held["paths"]["test"])} == {row["id"] for row in test}
    assert {row["id"] for row in validation} | {row["id"] for row in load_examples(held["paths"]["train"])} == {
        row["id"] for row in train
    }
    assert held["splits"]["validation"]["sessions"] == len(validation) == 4
    assert held["splits"]["validation"]["anomalous"] == 1
    assert held["drain_fit_lines"] == 10  # the 10 training rows; validation and test are matched, never learned
    assert set(held["unseen_in_training"]) == {"validation", "test"}


@pytest.mark.ray
def test_template_holdout_keeps_held_out_templates_out_of_training(local_ray, tmp_path: Path, bgl_sample: Path):
    from pipelines.building.dataset import build_prompt_dataset, load_examples
    from pipelines.templates.miner import LogTemplateMiner

    cfg = DataConfig(
        paths=[str(bgl_sample)],
        split="template_holdout",
        holdout_template_share=0.3,
        holdout_max_line_share=0.02,
        validation_fraction=0.2,
        max_prompt_tokens=160,
        output_dir=str(tmp_path / "o"),
    )
    summary = build_prompt_dataset(cfg)
    rows = {split: load_examples(summary["paths"][split]) for split in ("train", "validation", "test")}
    miner = LogTemplateMiner.load(summary["paths"]["miner_state"])
    sizes = miner.template_sizes()
    from pipelines.sessions.splits import held_out_templates

    held = held_out_templates(sizes, 0.3, 0.02, cfg.seed)
    assert held and sum(sizes.values()) == summary["drain_fit_lines"] == summary["good_lines"]  # fitted on all
    for split, split_rows in rows.items():
        assert split_rows, split
        shows_held = [bool(set(row["template_ids"]) & held) for row in split_rows]
        assert all(shows_held) if split == "test" else not any(shows_held)
    assert summary["unseen_in_training"]["test"]["unseen_sessions"] == len(rows["test"])


@pytest.mark.ray
def test_spread_validation_windows_come_from_across_the_training_period(local_ray, tmp_path: Path, bgl_sample: Path):
    from pipelines.building.dataset import build_prompt_dataset, load_examples

    cfg = DataConfig(paths=[str(bgl_sample)], validation_fraction=0.25, max_prompt_tokens=160)
    built = {}
    for draw in ("latest", "spread"):
        out = str(tmp_path / draw)
        summary = build_prompt_dataset(cfg.model_copy(update={"validation_draw": draw, "output_dir": out}))
        built[draw] = (
            summary,
            {split: load_examples(summary["paths"][split]) for split in ("train", "validation", "test")},
        )
    (latest, rows), (spread, drawn) = built["latest"], built["spread"]
    assert [r["id"] for r in drawn["test"]] == [r["id"] for r in rows["test"]]  # the test period does not move
    assert max(r["start_offset"] for r in rows["train"]) < min(r["start_offset"] for r in rows["validation"])
    assert drawn["validation"] and min(r["start_offset"] for r in drawn["validation"]) < min(
        r["start_offset"] for r in drawn["train"][len(drawn["train"]) // 2 :]
    )  # some validation windows lie in the first half of the training period
    assert {r["id"] for r in drawn["train"] + drawn["validation"]} == {
        r["id"] for r in rows["train"] + rows["validation"]
    }
    # the miner learns the whole training period under spread (validation is inside it), never the test period
    assert spread["drain_fit_lines"] - latest["drain_fit_lines"] == len(rows["validation"]) * cfg.window_size


def test_bad_inputs_fail_by_name_before_any_work(tmp_path: Path, loglead_files: tuple[Path, Path]):
    from pipelines.building.dataset import build_prompt_dataset

    events, labels = loglead_files
    base = {"format": "loglead_hdfs", "session": "block", "output_dir": str(tmp_path / "o")}
    with pytest.raises(FileNotFoundError, match="data.labels_path: .*nope.csv: no such file"):
        build_prompt_dataset(DataConfig(paths=[str(events)], labels_path=str(tmp_path / "nope.csv"), **base))
    with pytest.raises(FileNotFoundError, match="data.paths: .*nope.parquet: no such file"):
        build_prompt_dataset(DataConfig(paths=[str(tmp_path / "nope.parquet")], labels_path=str(labels), **base))
    with pytest.raises(FileNotFoundError, match="data.paths: .*nope.log: no such file"):
        build_prompt_dataset(DataConfig(paths=[str(tmp_path / "nope.log")], output_dir=str(tmp_path / "o")))


def test_session_kind_must_fit_the_format(tmp_path: Path):
    from pipelines.building.dataset import check_sessions

    with pytest.raises(ValueError, match="use session: block"):
        check_sessions(DataConfig(paths=["x"], format="hdfs", session="fixed"))
    with pytest.raises(ValueError, match="use session: block"):
        check_sessions(DataConfig(paths=["x"], format="loglead_hdfs"))
    with pytest.raises(ValueError, match="use session: block"):
        check_sessions(DataConfig(paths=["x"], format="bgl", session="block"))
    with pytest.raises(ValueError, match="labels_path"):
        check_sessions(DataConfig(paths=["x"], format="hdfs", session="block"))
    with pytest.raises(ValueError, match="set data.split: stratified"):
        DataConfig(paths=["x"], format="templates")
    old_name = DataConfig(paths=["x"], format="hdfs", session="block", hdfs_labels_path="l.csv")
    assert old_name.labels_path == "l.csv"


def test_raw_session_lines_reads_a_window_back_with_or_without_labels(tmp_path):
    from pipelines.building.dataset import raw_session_lines

    log = tmp_path / "bgl.log"
    log.write_bytes(b"- 1 a\r\nKERNDTLB 2 b\r\n- 3 c\r\n")
    row = {"source": str(log), "start_offset": len(b"- 1 a\r\n"), "n_lines": 2}
    assert raw_session_lines(row) == ["KERNDTLB 2 b", "- 3 c"]
    assert raw_session_lines(row, live=True) == ["2 b", "3 c"]


@pytest.mark.ray
def test_every_kind_of_bad_input_is_a_counted_dead_letter_and_no_good_line_is_lost(
    local_ray, tmp_path: Path, bgl_sample: Path
):
    import gzip
    import zlib

    from pipelines.building.dataset import build_prompt_dataset, load_examples

    sample = bgl_sample.read_bytes().split(b"\n")  # CRLF lines
    bad = {  # index in the mixed file -> (raw line, kind)
        10: (b"- 1117838570 \xff\xfe not utf-8\r", "invalid UTF-8"),
        50: (b"- 1117838570 2005.06.03 R02 \x00\x00\x00\r", "NUL byte"),
        90: (b"\x01\x02\x03\x04\x05\x06 binary garbage \x10\x11", "control byte"),
        130: (b"- " + b"y" * (1 << 20), "line too long"),
        170: (b"this is not a BGL line\r", "bgl: too few header fields"),
    }
    lines = sample[:300]
    for index in sorted(bad):
        lines.insert(index, bad[index][0])
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(b"\n".join(lines) + b"\n")
    offsets = [sum(len(line) + 1 for line in lines[:i]) for i in range(len(lines))]
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    packed = gzip.compress(b"\n".join(sample[300:1300]) + b"\n")
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    readable = zlib.decompressobj(31).decompress(cut.read_bytes())  # what a gzip reader can still get
    kept = readable.count(b"\n")

    cfg = DataConfig(
        paths=[str(mixed), str(empty), str(cut)], output_dir=str(tmp_path / "out"), window_size=20, shard_bytes=4096
    )
    summary = build_prompt_dataset(cfg)

    assert summary["dead_letters"] == {
        "NUL byte": 1,
        "bgl: too few header fields": 1,
        "control byte": 1,
        "empty file": 1,
        "invalid UTF-8": 1,
        "line too long": 1,
        "truncated gzip": 1,
    }
    assert summary["malformed"] == 7 and summary["good_lines"] == 300 + kept and 400 < kept < 1000
    letters = [json.loads(row) for row in open(summary["paths"]["dead_letter"])]
    assert [(letter["source"], letter["offset"], letter["kind"]) for letter in letters] == [
        *((str(mixed), offsets[index], bad[index][1]) for index in sorted(bad)),
        (str(empty), 0, "empty file"),
        (str(cut), len(readable[: readable.rindex(b"\n") + 1]), "truncated gzip"),
    ]
    assert letters[3]["reason"] == f"line of {(1 << 20) + 3} bytes is longer than data.max_line_bytes (65536)"
    rows = load_examples(summary["paths"]["train"]) + load_examples(summary["paths"]["test"])
    assert sum(row["n_lines"] for row in rows) == summary["good_lines"]  # every good line is in a session
    # The 300 good lines of mixed.log fill 15 windows exactly, so the cut file's lines start fresh windows.
    assert [row["source"] for row in rows].count(str(cut)) == -(-kept // 20)


def test_a_file_that_is_not_a_log_fails_before_any_work(tmp_path: Path):
    from pipelines.building.dataset import build_prompt_dataset

    blob = tmp_path / "blob.log"
    blob.write_bytes(bytes(range(256)) * 100)
    with pytest.raises(ValueError, match="data.paths: .*blob.log: not a text log"):
        build_prompt_dataset(DataConfig(paths=[str(blob)], output_dir=str(tmp_path / "o")))
    hdfs = tmp_path / "hdfs.log"
    hdfs.write_text("\n".join(HDFS_LINES) + "\n")
    with pytest.raises(ValueError, match="data.format: .*hdfs.log: none of its first 10 lines is a bgl line"):
        build_prompt_dataset(DataConfig(paths=[str(hdfs)], output_dir=str(tmp_path / "o")))


@pytest.mark.ray
def test_generic_regex_format_reads_plain_and_gz_logs_through_the_same_path(local_ray, tmp_path: Path):
    import gzip

    from pipelines.building.dataset import build_prompt_dataset, load_examples

    def app_line(i: int) -> str:
        if i % 17 == 5:
            return f"2024-01-02 03:{i // 60:02d}:{i % 60:02d} ERROR [db] connection {i} refused"
        return f"2024-01-02 03:{i // 60:02d}:{i % 60:02d} INFO [web] GET /item/{i} 200"

    first = [app_line(i) for i in range(70)]
    first.insert(33, "--- log rotated ---")  # fits no header: a dead letter, the rest is kept
    second = [app_line(i) for i in range(70, 130)]
    plain, packed = tmp_path / "app.log", tmp_path / "app.2.log.gz"
    plain.write_text("\n".join(first) + "\n")
    packed.write_bytes(gzip.compress(("\n".join(second) + "\n").encode()))
    cfg = DataConfig(
        paths=[str(plain), str(packed)],
        format="regex",
        regex={
            "line": r"(?P<timestamp>\S+ \S+) (?P<level>[A-Z]+) \[(?P<component>[^\]]+)\] (?P<content>.*)",
            "timestamp_format": "%Y-%m-%d %H:%M:%S",
            "anomaly": r"\bERROR\b",
        },
        window_size=10,
        output_dir=str(tmp_path / "out"),
    )
    summary = build_prompt_dataset(cfg)

    assert (summary["good_lines"], summary["malformed"]) == (130, 1)
    assert summary["dead_letters"] == {"regex: no match": 1}
    letter = json.loads(open(summary["paths"]["dead_letter"]).read())
    assert (letter["source"], letter["offset"]) == (str(plain), sum(len(line) + 1 for line in first[:33]))
    rows = load_examples(summary["paths"]["train"]) + load_examples(summary["paths"]["test"])

    def labels(texts: list[str]) -> list[str]:  # windows of 10 lines of a file, the dead letter counted as a line
        return [
            "anomalous" if any(" ERROR " in t for t in texts[w : w + 10]) else "normal"
            for w in range(0, len(texts), 10)
        ]

    expected = labels(first) + labels(second)  # 71 lines -> 8 windows (the last holds 1), 60 lines -> 6
    assert [row["label"] for row in rows] == expected and len(rows) == 14
    assert [row["n_lines"] for row in rows[:8]] == [10, 10, 10, 9, 10, 10, 10, 1]
    assert rows[8]["source"] == str(packed) and rows[8]["start_offset"] == 0
    assert (summary["splits"]["train"]["sessions"], summary["splits"]["test"]["sessions"]) == (10, 4)
    # The data folder keeps data.regex: `logrl eval --data regex:PATH` and the tail read lines with it.
    from pipelines.eval_data import load_eval_rows
    from pipelines.prompts.rows import PromptSettings

    assert PromptSettings.load(cfg.output_dir).line_regex() == cfg.regex.to_format()
    eval_rows = load_eval_rows(f"regex:{plain}", cfg.output_dir)
    assert [row["prompt"] for row in eval_rows] == [row["prompt"] for row in rows[:8]]
    assert [row["label"] for row in eval_rows] == labels(first)


def _template_csv(tmp_path: Path) -> Path:
    path = tmp_path / "templates.csv"
    normal = [f"generating core.{i} from node <*>" for i in range(14)]
    abnormal = [f"<*> exited abnormally due to signal {i}" for i in range(6)]
    path.write_text("log,label\n" + "".join(f"{t},0\n" for t in normal) + "".join(f"{t},1\n" for t in abnormal))
    return path


@pytest.mark.ray
def test_teachers_rewrite_train_references_and_count_what_they_reject(local_ray, tmp_path: Path):
    from test_endpoint_teacher import FakeEndpoint

    from pipelines.building.dataset import build_prompt_dataset, load_examples

    def answer(prompt: str, attempt: int) -> tuple[int, str]:
        if "signal 0" in prompt:
            return 200, "<think>Looks routine.</think><answer>normal</answer>"  # wrong: counted, rule kept
        verdict = "anomalous" if "abnormally" in prompt else "normal"
        return 200, f"<think>Teacher says {verdict}.</think><answer>{verdict}</answer>"

    base = {"paths": [str(_template_csv(tmp_path))], "format": "templates", "split": "stratified", "seed": 1}
    rule = build_prompt_dataset(DataConfig(**base, output_dir=str(tmp_path / "rule")))
    rule_train = load_examples(rule["paths"]["train"])
    with FakeEndpoint(answer) as server:
        teacher = {"kind": "endpoint", "endpoint": {"url": server.url, "model": "big", "requests_per_second": 1000}}
        summary = build_prompt_dataset(DataConfig(**base, teacher=teacher, output_dir=str(tmp_path / "ep")))
    train = load_examples(summary["paths"]["train"])
    wrong = [row for row in train if row["templates"] == ["<*> exited abnormally due to signal 0"]]
    assert summary["teacher"] == "endpoint (rule where rejected)" and len(server.requests) == 14 == len(train)
    assert summary["teacher_stats"] == {
        "accepted": 14 - len(wrong),
        "rejected": {"verdict does not match the label": 1} if wrong else {},
        "cached": 0,
        "requests": 14,
    }
    for row, before in zip(train, rule_train, strict=True):
        assert row | {"reference": None} == before | {"reference": None}  # only references change
        expected = before["reference"] if row in wrong else f"Teacher says {row['label']}."
        assert row["reference"] == expected
    test_rows = load_examples(summary["paths"]["test"])
    assert test_rows == load_examples(rule["paths"]["test"])  # test references stay the rule teacher's

    rlog = tmp_path / "rlog.json"
    rlog.write_text(
        json.dumps(
            [
                {"instruction": "i", "input": row["templates"][0], "label": "abnormal", "reasoning": r}
                for row, r in [
                    (train[0], "<think>From R-Log.</think><answer>abnormal</answer>"),
                    (train[1], "no tags at all"),
                ]
            ]
        )
    )
    summary = build_prompt_dataset(
        DataConfig(**base, teacher={"kind": "rlog", "rlog_paths": [str(rlog)]}, output_dir=str(tmp_path / "rl"))
    )
    train = load_examples(summary["paths"]["train"])
    stats = summary["teacher_stats"]
    assert stats["records_used"] == 1 and stats["records_skipped"] == {"not <think>…</think><answer>…</answer>": 1}
    accepted = int(train[0]["label"] == "anomalous")
    assert stats["accepted"] == accepted and sum(stats["rejected"].values()) == 14 - accepted
    assert [row["reference"] == "From R-Log." for row in train] == [bool(accepted)] + [False] * 13
