"""Eval rows: any supported input rendered with a run's frozen miner and prompt settings, exactly like test.jsonl."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.eval_data import check_spec, load_eval_rows, parse_spec
from pipelines.prompts.render import render_window
from pipelines.prompts.rows import PROMPT_SETTINGS_FILE, ROW_FIELDS, PromptSettings
from pipelines.reading.log_formats import parse_line
from pipelines.reading.regex_format import RegexFormat
from pipelines.sessions.grouping import anomaly_lines, fixed_windows, session_label
from pipelines.templates.miner import UNSEEN_ID, LogTemplateMiner

REPO = Path(__file__).resolve().parents[2]


def make_run(directory: Path, miner: LogTemplateMiner, **settings) -> Path:
    """A run's data dir as prepare-data leaves it: the miner file and the prompt settings."""
    directory.mkdir(parents=True, exist_ok=True)
    miner.save(directory / "miner_state.json")
    defaults = {"format": "bgl", "session": "fixed", "window_size": 20, "max_prompt_tokens": 160}
    PromptSettings(miner_file="miner_state.json", **(defaults | settings)).save(directory)
    return directory


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("data/bgl/BGL_2k.log", "expected FORMAT:PATH"),
        ("bgl:", "expected FORMAT:PATH"),
        ("csv:x.csv", "unknown format 'csv'"),
        ("hdfs:HDFS.log", "add ,LABELS_PATH"),
        ("bgl:a.log,labels.csv", "give no LABELS_PATH"),
        ("regex:a.log,labels.csv", "give no LABELS_PATH"),
    ],
)
def test_bad_specs_say_what_is_expected(spec: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)


def test_spec_parts():
    assert parse_spec("loglead_hdfs:e.parquet,l.csv") == ("loglead_hdfs", "e.parquet", "l.csv")
    assert parse_spec("templates:t.csv") == ("templates", "t.csv", None)
    assert parse_spec("regex:logs/app.log") == ("regex", "logs/app.log", None)


APP_REGEX = RegexFormat(
    r"(?P<timestamp>\S+ \S+) (?P<level>[A-Z]+) \[(?P<component>[^\]]+)\] (?P<content>.*)",
    "%Y-%m-%d %H:%M:%S",
    anomaly=r"\bERROR\b",
)


def _app_log(path: Path) -> Path:
    """40 lines of an application log (every 9th an ERROR) and one line no header regex fits."""
    lines = [
        f"2024-01-02 03:04:{i:02d} "
        + (f"ERROR [db] connection {i} refused" if i % 9 == 4 else f"INFO [web] GET /{i} 200")
        for i in range(40)
    ]
    lines.insert(25, "--- log rotated ---")
    path.write_text("\n".join(lines) + "\n")
    return path


def _templated(path: Path, miner: LogTemplateMiner) -> list[dict]:
    records = []
    for text in path.read_text().splitlines():
        if text.startswith("---"):
            continue
        record = parse_line(text, "regex", APP_REGEX)
        record["template_id"], record["template"] = miner.match(record["content"])
        records.append(record)
    return records


def test_regex_specs_read_lines_with_the_runs_data_regex(tmp_path: Path):
    log = _app_log(tmp_path / "app.log")
    miner = LogTemplateMiner.fit(
        parse_line(text, "regex", APP_REGEX)["content"] for text in log.read_text().splitlines() if "[" in text
    )
    run = make_run(tmp_path / "run", miner, format="regex", window_size=10, regex=asdict(APP_REGEX))
    rows = load_eval_rows(f"regex:{log}", run)  # the regex prepare-data saved with the run's data
    lines = _templated(log, miner)
    # Windows of 10 line numbers: the rotated line (number 25) is skipped but counted, as prepare-data counts it.
    windows = [lines[:10], lines[10:20], lines[20:29], lines[29:39], lines[39:]]
    assert [row["n_lines"] for row in rows] == [10, 10, 9, 10, 1]
    assert [row["prompt"] for row in rows] == [render_window(window, 160) for window in windows]
    assert [row["label"] for row in rows] == [session_label(window) for window in windows]
    assert [row["label"] for row in rows] == ["anomalous"] * 4 + ["normal"]
    assert "L5 db ERROR: connection <NUM> refused" in rows[0]["prompt"]  # component and level from the groups
    assert load_eval_rows(f"regex:{log}", run, regex=APP_REGEX) == rows  # the config's data.regex, given


def test_a_regex_spec_without_data_regex_names_the_field(tmp_path: Path, bgl_miner):
    log = _app_log(tmp_path / "app.log")
    run = make_run(tmp_path / "run", bgl_miner)  # a bgl run: its data has no data.regex
    with pytest.raises(ValueError, match=r"--data 'regex:.*': format regex needs its line regex: set data\.regex"):
        load_eval_rows(f"regex:{log}", run)
    with pytest.raises(ValueError, match=r"set data\.regex .*this run's data\.format is bgl"):
        check_spec("regex:x.log", None, "bgl")
    assert check_spec("regex:x.log", APP_REGEX, "regex") == "regex"
    assert check_spec("bgl:x.log", None, "bgl") == "bgl"


def test_bgl_rows_match_training_rendering(tmp_path: Path, bgl_miner, bgl_lines: list[dict], bgl_sample: Path):
    run = make_run(tmp_path / "run", bgl_miner)
    rows = load_eval_rows(f"bgl:{bgl_sample}", run)
    windows = list(fixed_windows(bgl_lines, 20))
    assert len(rows) == len(windows) == 100 and all(tuple(row) == ROW_FIELDS for row in rows)
    assert {row["split"] for row in rows} == {"eval"}
    assert [row["prompt"] for row in rows] == [render_window(window, 160) for window in windows]
    assert [row["label"] for row in rows] == [session_label(window) for window in windows]
    assert [row["anomaly_lines"] for row in rows] == [anomaly_lines(window) for window in windows]
    assert rows[1]["start_offset"] > 0 and rows[0]["source"] == str(bgl_sample)


def test_the_runs_miner_is_never_refitted(tmp_path: Path, bgl_miner, bgl_sample: Path):
    log = tmp_path / "new.log"
    text = bgl_sample.read_text().split("\n")[0].replace("instruction cache parity error corrected", "brand new xyzzy")
    log.write_text(text + "\nnot a bgl line\n")
    run = make_run(tmp_path / "run", bgl_miner, window_size=5)
    before = bgl_miner.state_bytes()
    (row,) = load_eval_rows(f"bgl:{log}", run)
    assert row["template_ids"] == [UNSEEN_ID] and row["prompt"] == "L1 KERNEL INFO: brand new xyzzy"
    assert LogTemplateMiner.load(run / "miner_state.json").state_bytes() == before


def test_loglead_rows_use_the_persisted_anomaly_templates(tmp_path: Path, loglead_files: tuple[Path, Path]):
    events, labels = loglead_files
    contents = pq.read_table(events).column("m_message").to_pylist()
    miner = LogTemplateMiner.fit(contents)
    exception_id, exception = miner.match(contents[3])
    run = make_run(
        tmp_path / "run", miner, format="loglead_hdfs", session="block", anomaly_templates={exception_id: exception}
    )
    saved = json.loads((run / PROMPT_SETTINGS_FILE).read_text())
    assert saved["anomaly_templates"] == [{"id": exception_id, "template": exception}]
    rows = load_eval_rows(f"loglead_hdfs:{events},{labels}", run)
    assert [(row["id"], row["label"], row["anomaly_lines"]) for row in rows] == [
        ("blk_1", "anomalous", [2]),
        ("blk_2", "normal", []),
        ("blk_3", "anomalous", [2]),
        ("blk_4", "normal", []),
    ]  # blk_9 has no label: left out (and logged)
    assert rows[0]["start_offset"] == 1 and rows[0]["reference"].startswith('L2 "Exception in receiveBlock')


def test_template_rows_are_single_line_sessions(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("log,label\ngenerating core <*>,0\n<*> exited abnormally due to signal: Aborted,1\n")
    miner = LogTemplateMiner.fit(["generating core <*>", "<*> exited abnormally due to signal: Aborted"])
    run = make_run(tmp_path / "run", miner, format="templates", window_size=1)
    rows = load_eval_rows(f"templates:{path}", run)
    assert [(row["label"], row["anomaly_lines"], row["n_lines"]) for row in rows] == [
        ("normal", [], 1),
        ("anomalous", [1], 1),
    ]
    assert rows[1]["prompt"].startswith("L1: ") and "exited abnormally" in rows[1]["prompt"]


def test_missing_files_are_named(tmp_path: Path, bgl_miner):
    with pytest.raises(FileNotFoundError, match="prompt_settings.json: no prompt settings"):
        load_eval_rows("bgl:data/bgl/BGL_2k.log", tmp_path)
    run = make_run(tmp_path / "run", bgl_miner)
    with pytest.raises(FileNotFoundError, match="--data: .*nope.log: no such file"):
        load_eval_rows(f"bgl:{tmp_path / 'nope.log'}", run)
    with pytest.raises(FileNotFoundError, match="--data labels: .*nope.csv: no such file"):
        load_eval_rows(f"hdfs:{REPO / 'data/bgl/BGL_2k.log'},{tmp_path / 'nope.csv'}", run)
    empty = tmp_path / "empty.log"
    empty.write_text("garbage\n")
    with pytest.raises(ValueError, match="no usable bgl lines .1 malformed"):
        load_eval_rows(f"bgl:{empty}", run)
