"""Block sessions built by the Ray Data group-by (`stream_blocks`) are those of grouping in one process.

Inputs are cut from the bundled LogLead HDFS sample: LogLead parquet (two files, several row groups, rows out of
time order, some without time, some blocks unlabelled) and the same events as raw HDFS text (two files, many read
shards, malformed lines, lines naming two blocks). The reference groups, orders, profiles and renders them in this
process with `block_sessions`, `order_by_time`, `template_profile` and `prompt_row`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_build_dataset import local_ray  # noqa: F401 (the module's Ray fixture)

from pipelines.config import DataConfig
from pipelines.prompts.rows import prompt_row, split_counts, tally_row
from pipelines.prompts.teacher import RuleTeacher
from pipelines.reading.log_formats import MalformedLine, parse_line
from pipelines.reading.read_logs import read_shard
from pipelines.reading.table_formats import read_loglead_table, read_session_labels
from pipelines.sessions.grouping import (
    TemplateCounts,
    block_sessions,
    mark_anomaly_lines,
    order_by_time,
    session_templates,
    stratified_train,
    template_profile,
    train_count,
)
from pipelines.templates.miner import UNSEEN_ID, LogTemplateMiner

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "hdfs_loglead"
EVENTS = SAMPLE / "hdfs_events_2percent.parquet"
LABELS = SAMPLE / "hdfs_seqs_2percent_labels.csv"


def shuffled_events(n_events: int, seed: int) -> pa.Table:
    """The sample's first events, shuffled within runs of 40 rows (input order is no longer time order)."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.arange(s, min(s + 40, n_events))) for s in range(0, n_events, 40)])
    return pq.read_table(EVENTS).slice(0, n_events).take(pa.array(order))


def some_labels(tmp_path: Path, every: int) -> Path:
    """The sample's labels less every `every`-th one (those blocks are unlabelled)."""
    rows = LABELS.read_text().splitlines()
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([rows[0], *(row for i, row in enumerate(rows[1:]) if i % every)]) + "\n")
    return path


def in_process(cfg: DataConfig, lines: list[dict]) -> tuple[list[dict], dict, int, dict]:
    """Rows (train then test, each in time order), split counts, unlabelled blocks and anomaly templates, made in
    this process: the miner fitted on the first `drain_fit_lines` contents, blocks grouped in one dict."""
    miner = LogTemplateMiner.fit(line["content"] for line in lines[: cfg.drain_fit_lines])
    for line in lines:
        line["template_id"], line["template"] = miner.match(line["content"])
    blocks = order_by_time(block_sessions(lines, read_session_labels(cfg.labels_path)))
    sessions = [block for block in blocks if block.label is not None]
    if cfg.split == "stratified":
        trains = stratified_train([session.label for session in sessions], cfg.train_fraction, cfg.seed)
    else:
        trains = [index < train_count(len(sessions), cfg.train_fraction) for index in range(len(sessions))]
    train_sessions = [session for session, train in zip(sessions, trains) if train]
    profile = template_profile(train_sessions, cfg.anomaly_template_max_normal_share, cfg.expected_template_share)
    teacher = RuleTeacher(profile.expected)
    rows, counts = {"train": [], "test": []}, split_counts()
    for session, train in zip(sessions, trains, strict=True):
        split = "train" if train else "test"
        mark_anomaly_lines(session.lines, profile.indicative)
        rows[split].append(prompt_row(session, split, cfg.max_prompt_tokens, teacher))
        tally_row(counts[split], rows[split][-1])
    return rows["train"] + rows["test"], counts, len(blocks) - len(sessions), profile.indicative


def assert_same_build(summary: dict, cfg: DataConfig, lines: list[dict]) -> list[dict]:
    """The streamed build's rows, counts and settings are the in-process ones; returns its rows."""
    from pipelines.building.dataset import load_examples

    rows, counts, unlabelled, indicative = in_process(cfg, lines)
    streamed = load_examples(summary["paths"]["train"]) + load_examples(summary["paths"]["test"])
    assert len(streamed) == len(rows) and [row["id"] for row in streamed] == [row["id"] for row in rows]
    assert streamed == rows
    assert summary["splits"] == counts and summary["unlabelled_sessions"] == unlabelled > 0
    assert min(counts[split][key] for split in ("train", "test") for key in ("sessions", "anomalous")) > 0
    assert summary["good_lines"] == len(lines) and summary["drain_fit_lines"] == cfg.drain_fit_lines
    assert summary["unmatched_lines"] == sum(line["template_id"] == UNSEEN_ID for line in lines) > 0
    settings = json.loads(open(summary["paths"]["prompt_settings"]).read())
    assert {item["id"]: item["template"] for item in settings["anomaly_templates"]} == indicative != {}
    out = Path(cfg.output_dir)
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no intermediate left
    return streamed


def test_template_counts_of_parts_add_up_to_the_template_profile():
    lines = read_loglead_table(EVENTS).slice(0, 20000).to_pylist()
    miner = LogTemplateMiner.fit(line["content"] for line in lines)
    for line in lines:
        line["template_id"], line["template"] = miner.match(line["content"])
    sessions = [s for s in order_by_time(block_sessions(lines, read_session_labels(LABELS))) if s.label is not None]
    whole = template_profile(sessions)
    counts = TemplateCounts()
    for part in (sessions[::3], sessions[1::3], sessions[2::3]):
        one = TemplateCounts()
        for session in part:
            one.add(session.label, session_templates(session.lines))
        counts.merge(one)
    assert counts.profile() == whole and whole.indicative and whole.expected
    assert counts.n_normal + sum(s.label == "anomalous" for s in sessions) == len(sessions)


@pytest.mark.ray
def test_loglead_sample_streams_the_blocks_of_one_process(local_ray, tmp_path: Path):  # noqa: F811
    from pipelines.building.dataset import build_prompt_dataset

    events = shuffled_events(16000, seed=1)
    no_time = pa.array(np.arange(events.num_rows) % 401 == 7)  # a few events have no time: they sort last
    stamps = pc.if_else(no_time, pa.scalar(None, events.schema.field("m_timestamp").type), events["m_timestamp"])
    events = events.set_column(events.schema.get_field_index("m_timestamp"), "m_timestamp", stamps)
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(events.slice(0, 9000), paths[0], row_group_size=3000)
    pq.write_table(events.slice(9000), paths[1], row_group_size=3000)
    cfg = DataConfig(
        paths=[str(path) for path in paths],
        format="loglead_hdfs",
        session="block",
        labels_path=str(some_labels(tmp_path, every=25)),
        drain_fit_lines=4000,
        output_dir=str(tmp_path / "out"),
    )
    summary = build_prompt_dataset(cfg)
    lines = [line for path in paths for line in read_loglead_table(path).to_pylist()]  # offset: row in its file
    rows = assert_same_build(summary, cfg, lines)
    assert summary["malformed"] == 0 and open(summary["paths"]["dead_letter"]).read() == ""
    assert {row["source"] for row in rows} == set(cfg.paths)


def hdfs_text(events: pa.Table) -> list[str]:
    """HDFS log lines of LogLead events; after every 500th, a line naming its block and the one before."""
    lines = []
    columns = [events.column(name).to_pylist() for name in ("date", "time", "id", "level", "component", "m_message")]
    blocks = events.column("seq_id").to_pylist()
    for i, (date, clock, pid, level, component, message) in enumerate(zip(*columns, strict=True)):
        lines.append(f"{date} {clock} {pid} {level} {component} {message}")
        if i % 500 == 499:
            lines.append(
                f"{date} {clock} 35 INFO dfs.FSNamesystem: BLOCK* ask 10.0.0.1:50010 to delete {blocks[i]} "
                f"{blocks[i - 1]}"
            )
    return lines


@pytest.mark.ray
def test_hdfs_text_streams_the_blocks_of_one_process(local_ray, tmp_path: Path):  # noqa: F811
    from pipelines.building.dataset import build_prompt_dataset

    text = hdfs_text(shuffled_events(12000, seed=2))
    for index in (10, 5000, 9500):
        text.insert(index, "081109 2036 35 INFO dfs.FSNamesystem: truncated header")
    paths = [tmp_path / "a.log", tmp_path / "b.log"]
    paths[0].write_text("\n".join(text[:6000]) + "\n")
    paths[1].write_text("\n".join(text[6000:]) + "\n")
    cfg = DataConfig(
        paths=[str(path) for path in paths],
        format="hdfs",
        session="block",
        labels_path=str(some_labels(tmp_path, every=30)),
        split="stratified",
        seed=3,
        drain_fit_lines=5000,
        shard_bytes=250_000,
        output_dir=str(tmp_path / "out"),
    )
    summary = build_prompt_dataset(cfg)
    lines, letters = [], []
    for path in cfg.paths:
        for raw in read_shard({"source": path, "start": 0, "end": -1}):
            try:
                lines.append({"source": raw["source"], "offset": raw["offset"], **parse_line(raw["text"], "hdfs")})
            except MalformedLine as bad:
                letters.append((raw["source"], raw["offset"], bad.kind))
    assert any(len(line["block_ids"]) == 2 for line in lines)
    assert_same_build(summary, cfg, lines)
    written = [json.loads(row) for row in open(summary["paths"]["dead_letter"])]
    assert [(letter["source"], letter["offset"], letter["kind"]) for letter in written] == letters
    assert summary["malformed"] == len(letters) == 3 and summary["dead_letters"] == {"hdfs: bad date/time": 3}


def test_an_input_listed_twice_fails_before_any_work(tmp_path: Path):
    from pipelines.building.dataset import build_prompt_dataset

    cfg = DataConfig(
        paths=[str(EVENTS), str(EVENTS)],
        format="loglead_hdfs",
        session="block",
        labels_path=str(LABELS),
        output_dir=str(tmp_path / "out"),
    )
    with pytest.raises(ValueError, match="data.paths: .*hdfs_events_2percent.parquet.* listed more than once"):
        build_prompt_dataset(cfg)


def test_spread_validation_draws_each_label_across_the_training_period_and_keeps_the_test_period(tmp_path: Path):
    from pipelines.building.stream_blocks import rank_sessions
    from pipelines.sessions.splits import SPLIT_CODES

    n = 400
    rng = np.random.default_rng(0)
    times = rng.permutation(n)  # parts hold sessions out of time order
    labels = ["anomalous" if t % 10 == 3 else "normal" for t in times]
    table = pa.table(
        {
            "label": labels,
            "first_ts": pa.array(times.astype("int64")).cast(pa.timestamp("s")),
            "first_file": pa.array(np.zeros(n, np.int64)),
            "first_offset": pa.array(times.astype("int64")),
            "first_slot": pa.array(np.zeros(n, np.int64)),
        }
    )
    parts = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(table.slice(0, 150), parts[0])
    pq.write_table(table.slice(150), parts[1])
    base = dict(format="loglead_hdfs", session="block", paths=[str(EVENTS)], labels_path=str(LABELS))
    base |= dict(train_fraction=0.8, validation_fraction=0.1)
    validation, test = SPLIT_CODES["validation"], SPLIT_CODES["test"]

    _, latest, _ = rank_sessions(parts, DataConfig(**base))
    _, spread, _ = rank_sessions(parts, DataConfig(**base, validation_draw="spread"))
    assert list(np.flatnonzero(latest == validation)) == list(range(288, 320))  # the training period's end
    assert (spread == test).sum() == (latest == test).sum() == 80 and (spread[320:] == test).all()
    drawn = np.flatnonzero(spread == validation)
    assert min(drawn) < 100 and max(drawn) < 320  # across the period, never in the test period
    in_time = ["anomalous" if t % 10 == 3 else "normal" for t in range(n)]  # the label of each rank
    assert sorted(in_time[i] for i in drawn) == ["anomalous"] * 3 + ["normal"] * 29  # 10% of each label
