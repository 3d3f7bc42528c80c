"""The data pipeline: raw logs -> parsed lines -> templates -> sessions -> prompt + reference rationale JSONL files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import ray

from pipelines.config import DataConfig
from pipelines.prompts import render_window
from pipelines.read_logs import DEAD_LETTER_FILE, read_block_labels, read_logs
from pipelines.sessions import Session, block_sessions, fixed_windows, session_label, train_count
from pipelines.teacher import RuleTeacher, Teacher
from pipelines.templates import UNSEEN_ID, LogTemplateMiner, TemplateMatcher

MINER_STATE_FILE = "miner_state.json"
SUMMARY_FILE = "summary.json"
SPLITS = ("train", "test")
ITER_BATCH_LINES = 4096


def iter_rows(ds: ray.data.Dataset, columns: list[str] | None = None) -> Iterator[dict]:
    """Stream rows to the driver in dataset order, a batch at a time (never the whole corpus at once)."""
    if columns:
        ds = ds.select_columns(columns)
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=ITER_BATCH_LINES):
        yield from batch.to_pylist()


def fit_miner(lines: ray.data.Dataset, cfg: DataConfig) -> LogTemplateMiner:
    """Fit drain3 on every good line's content, streamed in log order (drain learning is sequential)."""
    contents = (row["content"] for row in iter_rows(lines, ["content"]))
    return LogTemplateMiner.fit(contents, sim_threshold=cfg.drain_sim_threshold, depth=cfg.drain_depth)


def match_templates(lines: ray.data.Dataset, miner_path: Path, cfg: DataConfig) -> ray.data.Dataset:
    """Add template_id/template in parallel; each actor loads the frozen miner once."""
    return lines.map_batches(
        TemplateMatcher,
        fn_constructor_kwargs={"state_path": str(miner_path)},
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cfg.match_workers),
        batch_format="pyarrow",
        batch_size=ITER_BATCH_LINES,
    )


def check_sessions(cfg: DataConfig) -> None:
    """Fail before reading anything when the session kind cannot produce labels for this format."""
    if (cfg.session == "block") != (cfg.format == "hdfs"):
        raise ValueError("hdfs labels blocks, not lines: use session: block for hdfs and only for hdfs")
    if cfg.session == "block" and not cfg.hdfs_labels_path:
        raise ValueError("session: block needs data.hdfs_labels_path (the BlockId,Label CSV)")


def make_sessions(rows: Iterable[dict], cfg: DataConfig, good_lines: int) -> tuple[Iterator[Session], int, int]:
    """Sessions in chronological order, how many (known up front, so the split can stream), how many lack a label."""
    if cfg.session == "fixed":
        windows = fixed_windows(rows, cfg.window_size)
        sessions = (Session(f"w{i:06d}", lines, session_label(lines)) for i, lines in enumerate(windows))
        return sessions, math.ceil(good_lines / cfg.window_size), 0
    blocks = block_sessions(rows, read_block_labels(cfg.hdfs_labels_path))
    labelled = [block for block in blocks if block.label is not None]
    return iter(labelled), len(labelled), len(blocks) - len(labelled)  # unlabelled blocks are reported, not lost


def prompt_row(session: Session, split: str, cfg: DataConfig, teacher: Teacher) -> dict:
    """One output row: the rendered prompt (never the labels) and the teacher's reference rationale."""
    prompt = render_window(session.lines, cfg.max_prompt_lines)
    first = session.lines[0]
    return {
        "id": session.id,
        "prompt": prompt,
        "label": session.label,
        "reference": teacher.rationale(session.lines, session.label, prompt),
        "split": split,
        "source": first["source"],
        "start_offset": first["offset"],
        "n_lines": len(session.lines),
        "templates": list(dict.fromkeys(line["template"] for line in session.lines)),
    }


def _count_unmatched(rows: Iterable[dict], tally: dict) -> Iterator[dict]:
    """Pass rows through, counting lines the fitted miner could not match (should stay 0: it saw every line)."""
    for row in rows:
        tally["unmatched_lines"] += row["template_id"] == UNSEEN_ID
        yield row


def build_prompt_dataset(cfg: DataConfig, teacher: Teacher | None = None) -> dict:
    """Run the whole pipeline for `cfg`; write train/test JSONL, miner state, dead letters, and return the summary."""
    check_sessions(cfg)
    teacher = teacher or RuleTeacher()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {split: out / f"{split}.jsonl" for split in SPLITS}
    paths |= {
        "dead_letter": out / DEAD_LETTER_FILE,
        "miner_state": out / MINER_STATE_FILE,
        "summary": out / SUMMARY_FILE,
    }

    lines, malformed = read_logs(cfg)
    good_lines = lines.count()
    miner = fit_miner(lines, cfg)
    miner.save(paths["miner_state"])
    matched = match_templates(lines, paths["miner_state"], cfg)

    tally = {"unmatched_lines": 0}
    sessions, n_sessions, unlabelled = make_sessions(_count_unmatched(iter_rows(matched), tally), cfg, good_lines)
    n_train = train_count(n_sessions, cfg.train_fraction)
    counts = {split: {"sessions": 0, "anomalous": 0} for split in SPLITS}
    with open(paths["train"], "w", encoding="utf-8") as train, open(paths["test"], "w", encoding="utf-8") as test:
        for index, session in enumerate(sessions):
            split = "train" if index < n_train else "test"
            row = prompt_row(session, split, cfg, teacher)
            (train if split == "train" else test).write(json.dumps(row) + "\n")
            counts[split]["sessions"] += 1
            counts[split]["anomalous"] += session.label == "anomalous"

    summary = {
        "format": cfg.format,
        "session": cfg.session,
        "teacher": teacher.name,
        "lines_read": good_lines + malformed,
        "good_lines": good_lines,
        "malformed": malformed,
        "templates": miner.n_templates,
        "unmatched_lines": tally["unmatched_lines"],
        "unlabelled_sessions": unlabelled,
        "window_size": cfg.window_size if cfg.session == "fixed" else None,
        "splits": counts,
        "paths": {name: str(path) for name, path in paths.items()},
    }
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_examples(path: str | Path) -> list[dict]:
    """Rows of a train/test JSONL file written by `build_prompt_dataset`."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def raw_session_lines(row: dict, live: bool = False) -> list[str]:
    """The raw log lines of a fixed-window example, read back from its source file at its byte offset.

    `live=True` drops the alert-label column, giving the lines as a production log would carry them.
    """
    with open(row["source"], "rb") as handle:
        handle.seek(row["start_offset"])
        lines = [handle.readline().decode("utf-8", "replace").rstrip("\r\n") for _ in range(row["n_lines"])]
    return [line.split(None, 1)[1] if live else line for line in lines]
