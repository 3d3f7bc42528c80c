"""Fixed-window sessions as one streaming Ray Data pipeline: read -> parse -> match -> window -> prompt -> parquet.

A window is `window_size` consecutive lines of one file (line `n` is in window `n // window_size`); a malformed
line is a dead letter and leaves its window shorter. Read shards are cut on window starts (a cheap newline count
first), so no window spans two shards: each shard's task reads, parses, matches against the frozen miner, cuts
its windows (carrying the last one across the shard's read chunks), renders the prompt rows and writes them as
parquet parts of the train and test folders, and its dead letters beside them. Only counts reach the driver:
nothing holds the corpus in one process.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from pipelines.prompts.rows import prompt_row, split_counts, tally_row
from pipelines.prompts.store import PartWriter, part_files, part_name
from pipelines.prompts.teacher import Teacher
from pipelines.reading.columnar_read import gzip_pieces
from pipelines.reading.raw_lines import GZIP_ERRORS, InvalidUtf8, skip_line
from pipelines.reading.read_logs import parse_batch, plan_shards, read_shard_batches
from pipelines.reading.regex_format import RegexFormat
from pipelines.sessions.grouping import Session, line_windows, mark_anomaly_lines, session_label
from pipelines.sessions.splits import SPLITS, chronological_split, template_holdout_split
from pipelines.templates.miner import UNSEEN_ID, TemplateMatcher

LETTERS_DIR = ".dead_letters"
COUNT_CHUNK_BYTES = 16 << 20


def count_lines(shard: dict) -> int:
    """Lines a reader gets from a shard (`readline` semantics: a last line without a newline counts)."""
    if shard["source"].endswith(".gz"):
        return count_gzip_lines(shard["source"])
    count, last = 0, b"\n"
    with open(shard["source"], "rb") as handle:
        handle.seek(shard["start"])
        remaining = shard["end"] - shard["start"]
        while remaining > 0:
            piece = handle.read(min(COUNT_CHUNK_BYTES, remaining))
            if not piece:
                break
            count += piece.count(b"\n")
            last, remaining = piece[-1:], remaining - len(piece)
    return count + (last != b"\n")


def count_gzip_lines(path: str) -> int:
    """Whole lines of a .gz file as the reader gets them (`columnar_read.gzip_pieces`); a truncated or corrupt
    stream counts the lines before the break."""
    count, last = 0, b"\n"
    try:
        for piece in gzip_pieces(path):
            count += piece.count(b"\n")
            last = piece[-1:]
    except GZIP_ERRORS:
        return count
    return count + (last != b"\n")


@ray.remote(num_cpus=1)
def count_lines_task(shard: dict) -> int:
    return count_lines(shard)


def _line_start(path: str, start: int, skip: int) -> int:
    """Byte offset of the line `skip` lines after the one starting at `start`."""
    with open(path, "rb") as handle:
        handle.seek(start)
        for _ in range(skip):
            skip_line(handle)
        return handle.tell()


def align_shards(shards: list[dict], counts: list[int], window_size: int) -> tuple[list[dict], dict[str, int]]:
    """Move each shard start of a file forward to the next window start; shards left empty merge into the one
    before. Returns shards with `first_line`, `window_base` (ordinal of the file's first window) and `index`, and
    the windows of each file."""
    aligned: list[dict] = []
    windows: dict[str, int] = {}
    for source, group in itertools.groupby(zip(shards, counts, strict=True), key=lambda pair: pair[0]["source"]):
        group = list(group)
        first_lines = np.concatenate([[0], np.cumsum([count for _, count in group])])
        total = int(first_lines[-1])
        base = sum(windows.values())
        windows[source] = math.ceil(total / window_size)
        file_shards = [dict(group[0][0], first_line=0)]
        for i in range(1, len(group)):
            shard, line, next_line = group[i][0], int(first_lines[i]), int(first_lines[i + 1])
            start_line = -(-line // window_size) * window_size
            if start_line >= next_line:
                continue  # no window starts in this shard: its lines stay with the shard before
            start = _line_start(source, shard["start"], start_line - line)
            file_shards[-1]["end"] = start
            file_shards.append(dict(shard, start=start, first_line=start_line))
        file_shards[-1]["end"] = group[-1][0]["end"]
        aligned.extend(dict(shard, window_base=base) for shard in file_shards)
    return [dict(shard, index=index) for index, shard in enumerate(aligned)], windows


def plan_window_shards(
    paths: list[str], shard_bytes: int, window_size: int
) -> tuple[list[dict], dict[str, int], dict[str, int]]:
    """Read shards that start on window starts (lines counted in parallel Ray tasks), windows and lines per file."""
    shards = plan_shards(paths, shard_bytes)
    counts = ray.get([count_lines_task.remote(shard) for shard in shards])
    lines: dict[str, int] = {}
    for shard, count in zip(shards, counts, strict=True):
        lines[shard["source"]] = lines.get(shard["source"], 0) + count
    return (*align_shards(shards, counts, window_size), lines)


def lines_before_window(cut: int, windows: dict[str, int], lines: dict[str, int], window_size: int) -> int:
    """Raw lines (dead letters included) in front of window ordinal `cut`, files in input order: the length of
    the training period, which the miner learns from."""
    total = 0
    for source, count in windows.items():
        if cut >= count:
            total, cut = total + lines[source], cut - count
            continue
        return total + min(cut * window_size, lines[source])
    return total


@dataclass
class ShardJob:
    """What every shard task needs: where to write, the frozen miner, and how to read, cut and render."""

    output_dir: str
    miner_path: str
    fmt: str
    regex: RegexFormat | None
    window_size: int
    bounds: tuple[int, int]  # chronological: (first validation ordinal, first test ordinal)
    max_prompt_tokens: int
    teacher: Teacher
    max_line_bytes: int
    invalid_utf8: InvalidUtf8
    match_cache_size: int
    held_out: frozenset[int] | None = None  # split template_holdout: held-out template ids (bounds unused)
    validation_fraction: float = 0.0
    seed: int = 0
    validation_draw: str = "latest"  # chronological: the training period's latest windows validate, or a draw

    def split_of(self, ordinal: int, session: Session) -> str:
        """The split of a window: by its place in time, or by its templates under template_holdout."""
        if self.held_out is None:
            return chronological_split(ordinal, self.bounds, self.validation_draw, self.seed)
        ids = [line["template_id"] for line in session.lines]
        return template_holdout_split(session.id, ids, self.held_out, self.validation_fraction, self.seed)


_MATCHER: dict[tuple, TemplateMatcher] = {}


def frozen_matcher(path: str, cache_size: int) -> TemplateMatcher:
    """One matcher per worker process and miner file version (Ray reuses workers across tasks and runs)."""
    key = (path, Path(path).stat().st_mtime_ns, cache_size)
    if key not in _MATCHER:
        _MATCHER.clear()
        _MATCHER[key] = TemplateMatcher(path, cache_size)
    return _MATCHER[key]


class ShardSessions:
    """The work of one shard: its prompt rows to parquet parts, its dead letters to a JSONL part, its counts."""

    def __init__(self, shard: dict, job: ShardJob):
        self.shard, self.job = shard, job
        out = Path(job.output_dir)
        self.writers = {split: PartWriter(out / split / part_name(shard["index"])) for split in SPLITS}
        self.letters_path = out / LETTERS_DIR / f"part-{shard['index']:06d}.jsonl"
        self.letters = None
        self.stats = {"good_lines": 0, "unmatched_lines": 0, "dead_letters": Counter(), "splits": split_counts()}

    def run(self) -> dict:
        job, matcher = self.job, frozen_matcher(self.job.miner_path, self.job.match_cache_size)
        carry, line = None, self.shard["first_line"]
        try:
            for raw in read_shard_batches(pa.Table.from_pylist([self.shard]), job.max_line_bytes, job.invalid_utf8):
                parsed = parse_batch(raw, job.fmt, job.regex)
                parsed = parsed.append_column("line", pa.array(np.arange(line, line + raw.num_rows), pa.int64()))
                line += raw.num_rows
                bad = pc.not_equal(parsed.column("kind"), "")
                self._dead_letters(parsed.filter(bad))
                good = parsed.filter(pc.invert(bad)).drop_columns(["text", "kind", "error"])
                if not good.num_rows:
                    continue
                good = matcher(good)
                self.stats["good_lines"] += good.num_rows
                self.stats["unmatched_lines"] += pc.sum(pc.equal(good.column("template_id"), UNSEEN_ID)).as_py()
                carry = good if carry is None else pa.concat_tables([carry, good])
                keys = carry.column("line").to_numpy() // job.window_size
                last = int(np.searchsorted(keys, keys[-1]))  # the last window may go on in the next chunk
                self._windows(carry.slice(0, last))
                carry = carry.slice(last)
            if carry is not None:
                self._windows(carry)
        finally:
            for writer in self.writers.values():
                writer.close()
            if self.letters is not None:
                self.letters.close()
        self.stats["dead_letters"] = dict(self.stats["dead_letters"])
        return self.stats

    def _windows(self, table: pa.Table) -> None:
        job = self.job
        for number, lines in line_windows(table.to_pylist(), job.window_size):
            ordinal = self.shard["window_base"] + number
            session = Session(f"w{ordinal:06d}", lines, session_label(lines))
            split = job.split_of(ordinal, session)
            mark_anomaly_lines(session.lines, None)
            row = prompt_row(session, split, job.max_prompt_tokens, job.teacher)
            self.writers[split].write(row)
            tally_row(self.stats["splits"][split], row)

    def _dead_letters(self, bad: pa.Table) -> None:
        if not bad.num_rows:
            return
        if self.letters is None:
            self.letters_path.parent.mkdir(parents=True, exist_ok=True)
            self.letters = open(self.letters_path, "w", encoding="utf-8")  # noqa: SIM115 (closed in run)
        for kind, line in dead_letter_lines(bad):
            self.letters.write(line)
            self.stats["dead_letters"][kind] += 1


def dead_letter_lines(bad: pa.Table) -> Iterator[tuple[str, str]]:
    """(kind, JSONL line `{source, offset, kind, reason, text}`) of each malformed row."""
    for row in bad.select(["source", "offset", "kind", "error", "text"]).to_pylist():
        letter = {k: row[k] for k in ("source", "offset", "kind")} | {"reason": row["error"], "text": row["text"]}
        yield row["kind"], json.dumps(letter) + "\n"


def shard_sessions(shards: pa.Table, job: ShardJob) -> Iterator[pa.Table]:
    """Ray Data stage: one shard row in, its counts out (as JSON: the rows themselves went to parquet)."""
    for shard in shards.to_pylist():
        yield pa.table({"stats": [json.dumps(ShardSessions(shard, job).run())]})


def clear_outputs(output_dir: Path) -> None:
    """Remove a previous build's parts, so that a smaller rerun leaves no stale shard behind."""
    for folder in (*SPLITS, LETTERS_DIR):
        for part in [*part_files(output_dir / folder), *(output_dir / folder).glob("part-*.jsonl")]:
            part.unlink()


def merge_dead_letters(output_dir: Path, path: Path) -> None:
    """Concatenate the shards' dead-letter parts, in shard (= input) order, into one JSONL file."""
    folder = output_dir / LETTERS_DIR
    with open(path, "wb") as out:
        for part in sorted(folder.glob("part-*.jsonl")):
            out.write(part.read_bytes())
            part.unlink()
    if folder.is_dir():
        folder.rmdir()


def run_shards(shards: list[dict], job: ShardJob, workers: int) -> dict:
    """Run every shard task (at most `workers` at once) and add up their counts."""
    totals = {"good_lines": 0, "unmatched_lines": 0, "dead_letters": Counter(), "splits": split_counts()}
    options = ray.data.DataContext.get_current().execution_options
    ordered, options.preserve_order = options.preserve_order, False  # rows go to named parts: any order will do
    try:
        stats = ray.data.from_items(shards, override_num_blocks=len(shards)).map_batches(
            shard_sessions,
            fn_kwargs={"job": job},
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.TaskPoolStrategy(size=workers),
        )
        batches = list(stats.iter_batches(batch_format="pyarrow", batch_size=None))  # one small row per shard
    finally:
        options.preserve_order = ordered
    for batch in batches:
        for text in batch.column("stats").to_pylist():
            one = json.loads(text)
            totals["good_lines"] += one["good_lines"]
            totals["unmatched_lines"] += one["unmatched_lines"]
            totals["dead_letters"].update(one["dead_letters"])
            for split, counts in one["splits"].items():
                for key, value in counts.items():
                    totals["splits"][split][key] += value
    totals["dead_letters"] = dict(sorted(totals["dead_letters"].items()))
    return totals
