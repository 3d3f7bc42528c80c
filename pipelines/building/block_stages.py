"""The Ray Data stages of block sessions (`stream_blocks`): what runs in workers, one batch, group or part at a time.

Lines -> `block_lines` (dead letters and counts to side files, match, one row per block id a line names) ->
hash shuffle by block id -> `block_sessions_of` (one session row per block) -> intermediate parquet parts ->
`ranked_sessions` (the driver's time ranks attached) -> shuffle by output part -> `render_part` (prompt rows).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from pipelines.building.stream_sessions import LETTERS_DIR, dead_letter_lines, frozen_matcher
from pipelines.prompts.rows import prompt_row, split_counts, tally_row
from pipelines.prompts.store import PartWriter, part_name
from pipelines.prompts.teacher import Teacher
from pipelines.reading.table_formats import LINE_SCHEMA, LOGLEAD_COLUMNS, loglead_lines
from pipelines.sessions.grouping import Session, TemplateCounts, mark_anomaly_lines
from pipelines.sessions.splits import SPLITS
from pipelines.templates.miner import UNSEEN_ID

STATS_DIR = ".block_stats"
LOGLEAD_BATCH_ROWS = 1 << 16
SESSIONS_PER_PART = 2048  # prompt rows per output part (4 row groups)
LINE_FIELDS = [*LINE_SCHEMA.names, "template_id", "template"]
# A session's place in time: its first line's time (none: last), then where the block first appears in the input.
KEY_COLUMNS = ["first_ts", "first_file", "first_offset", "first_slot"]


@dataclass
class LineJob:
    """What every line batch needs: where its side files go, the frozen miner, the inputs in order."""

    output_dir: str
    miner_path: str
    match_cache_size: int
    paths: list[str]
    time_window_s: int | None = None  # session: time: sessions are time windows, not block ids


def loglead_row_groups(paths: list[str]) -> list[dict]:
    """One read item per parquet row group, with the index of its first row in its file (metadata only)."""
    items = []
    for path in paths:
        metadata = pq.ParquetFile(path).metadata
        first = 0
        for group in range(metadata.num_row_groups):
            items.append({"source": path, "row_group": group, "first_row": first})
            first += metadata.row_group(group).num_rows
    return items


def read_loglead_row_groups(items: pa.Table) -> Iterator[pa.Table]:
    """Ray Data stage: LogLead row groups in, line records out, `offset` = the row's index in its file."""
    for item in items.to_pylist():
        parquet = pq.ParquetFile(item["source"])
        first = item["first_row"]
        batches = parquet.iter_batches(
            LOGLEAD_BATCH_ROWS, row_groups=[item["row_group"]], columns=list(LOGLEAD_COLUMNS)
        )
        for batch in batches:
            yield loglead_lines(pa.Table.from_batches([batch]), item["source"], first_offset=first)
            first += batch.num_rows


def block_lines(batch: pa.Table, job: LineJob) -> pa.Table:
    """Ray Data stage: parsed lines in (dead letters included), one matched row per (line, block id) out.

    The batch's dead letters and counts go to side files named by its first line (file index, offset): name order
    is input order, and a retried task rewrites the same files.
    """
    out, name = Path(job.output_dir), None
    if batch.num_rows:
        first = batch.slice(0, 1).to_pylist()[0]
        name = f"part-{job.paths.index(first['source']):06d}-{first['offset']:016d}"
    letters: Counter[str] = Counter()
    good = batch
    if "kind" in batch.column_names:
        bad = pc.not_equal(batch.column("kind"), "")
        letters = write_letters(batch.filter(bad), out / LETTERS_DIR / f"{name}.jsonl")
        good = batch.filter(pc.invert(bad)).drop_columns(["text", "kind", "error"])
    matched = frozen_matcher(job.miner_path, job.match_cache_size)(good)
    if name is not None:
        unmatched = pc.sum(pc.equal(matched.column("template_id"), UNSEEN_ID)).as_py() or 0
        stats = {"good_lines": matched.num_rows, "unmatched_lines": unmatched, "dead_letters": letters}
        (out / STATS_DIR).mkdir(parents=True, exist_ok=True)
        (out / STATS_DIR / f"{name}.json").write_text(json.dumps(stats))
    if job.time_window_s is not None:
        return key_by_time(matched, job.paths, job.time_window_s)
    return explode_blocks(matched, job.paths)


def write_letters(bad: pa.Table, path: Path) -> Counter[str]:
    """Malformed rows as dead-letter JSONL `{source, offset, kind, reason, text}`; how many of each kind."""
    counts: Counter[str] = Counter()
    if not bad.num_rows:
        return counts
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for kind, line in dead_letter_lines(bad):
            out.write(line)
            counts[kind] += 1
    return counts


def explode_blocks(lines: pa.Table, paths: list[str]) -> pa.Table:
    """One row per block id a line names (a line naming several joins each, one naming none joins none), with
    `block_id`, `slot` (its place in the line's list) and `file_index` (the line's input file)."""
    lines = lines.combine_chunks()
    block_ids = lines.column("block_ids").combine_chunks()
    parents = pc.list_parent_indices(block_ids).to_numpy()
    slots = np.arange(len(parents)) - np.searchsorted(parents, parents)  # parents ascend: first index of each line
    rows = lines.take(pa.array(parents, pa.int64()))
    files = pc.index_in(rows.column("source"), value_set=pa.array(paths, pa.string()))
    rows = rows.append_column("file_index", files.cast(pa.int64()))
    rows = rows.append_column("block_id", pc.list_flatten(block_ids).cast(pa.string()))
    return rows.append_column("slot", pa.array(slots, pa.int64()))


def key_by_time(lines: pa.Table, paths: list[str], seconds: int) -> pa.Table:
    """Rows as `explode_blocks` gives them, keyed by time window instead: `block_id` "t<start>", the window's start
    in unix seconds (the time rounded down to a multiple of `seconds`); a line without a time joins no window."""
    rows = lines.filter(pc.is_valid(lines.column("timestamp")))
    starts = np.floor(rows.column("timestamp").to_numpy() / seconds).astype(np.int64) * seconds
    files = pc.index_in(rows.column("source"), value_set=pa.array(paths, pa.string()))
    rows = rows.append_column("file_index", files.cast(pa.int64()))
    rows = rows.append_column("block_id", pc.binary_join_element_wise("t", pa.array(starts).cast(pa.string()), ""))
    return rows.append_column("slot", pa.array(np.zeros(rows.num_rows, np.int64)))


_LABELS: dict[str, dict[str, str]] = {}


def shared_labels(ref: ray.ObjectRef) -> dict[str, str]:
    """The labels dict the driver put in the object store, fetched once per worker process."""
    key = ref.hex()
    if key not in _LABELS:
        _LABELS.clear()
        _LABELS[key] = ray.get(ref)
    return _LABELS[key]


def block_sessions_of(partition: pa.Table, labels: list[ray.ObjectRef]) -> pa.Table:
    """Ray Data stage after the shuffle by block id (all rows of a block in one partition): one session row per
    block, built for the whole partition at once.

    - `lines`: the block's lines by time, then input order (`grouping.order_by_time`: no time sorts last); an
      unlabelled block keeps none (it is only counted);
    - `first_ts` (its first line's time; inf: none) and where it first appears (`first_file`, `first_offset`,
      `first_slot`: the line, then the place in the line's block ids), which orders blocks of the same time;
    - `template_ids` / `templates`: the templates of its lines, each once, unseen ones left out.
    """
    keyed = partition.append_column("ts", pc.fill_null(partition.column("timestamp"), math.inf))
    lines = keyed.sort_by(
        [("block_id", "ascending"), *((name, "ascending") for name in ("ts", "file_index", "offset"))]
    )
    blocks = lines.column("block_id").combine_chunks()
    changes = pc.not_equal(blocks.slice(1), blocks.slice(0, max(len(blocks) - 1, 0)))
    starts = np.concatenate([[0], np.flatnonzero(changes.to_numpy(zero_copy_only=False)) + 1]).astype(np.int64)
    starts = starts[starts < len(blocks)]
    sizes = np.diff(np.append(starts, len(blocks)))
    block_ids = blocks.take(pa.array(starts))
    if labels:
        found = shared_labels(labels[0])
        verdicts = pa.array([found.get(block_id) for block_id in block_ids.to_pylist()], pa.string())
    else:  # time windows: anomalous if a line carries an alert label (`grouping.session_label`)
        line_labels = lines.column("label")
        alert = pc.and_(pc.is_valid(line_labels), pc.not_equal(pc.fill_null(line_labels, "-"), "-"))
        alerts = np.add.reduceat(alert.to_numpy(zero_copy_only=False).astype(np.int64), starts) if len(starts) else []
        verdicts = pa.array(["anomalous" if n else "normal" for n in alerts], pa.string())
    labelled = pc.is_valid(verdicts).to_numpy(zero_copy_only=False)
    by_appearance = [("block_id", "ascending"), *((name, "ascending") for name in ("file_index", "offset", "slot"))]
    firsts = keyed.sort_by(by_appearance).select(["file_index", "offset", "slot"]).take(pa.array(starts))
    kept = lines.select(LINE_FIELDS).filter(pa.array(np.repeat(labelled, sizes))).combine_chunks()
    structs = pa.StructArray.from_arrays([column.combine_chunks() for column in kept.columns], names=LINE_FIELDS)
    line_offsets = np.concatenate([[0], np.cumsum(np.where(labelled, sizes, 0))])
    template_ids, templates = _templates_per_block(lines, sizes)
    return pa.table(
        {
            "block_id": block_ids,
            "label": verdicts,
            "first_ts": lines.column("ts").take(pa.array(starts)),
            "first_file": firsts.column("file_index"),
            "first_offset": firsts.column("offset"),
            "first_slot": firsts.column("slot"),
            "template_ids": template_ids,
            "templates": templates,
            "lines": pa.ListArray.from_arrays(pa.array(line_offsets, pa.int32()), structs),
        }
    )


def _templates_per_block(lines: pa.Table, sizes: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Per block (consecutive runs of `sizes` rows), its known template ids and texts, each once, by first line."""
    block_of_row = np.repeat(np.arange(len(sizes)), sizes)
    ids = pc.fill_null(lines.column("template_id"), UNSEEN_ID).to_numpy()
    rows = np.flatnonzero(ids != UNSEEN_ID)
    pairs = block_of_row[rows] * (int(ids.max(initial=0)) + 1) + ids[rows]
    _, first = np.unique(pairs, return_index=True)
    firsts = np.sort(rows[first])  # the rows are grouped by block, so the firsts stay grouped by block
    offsets = pa.array(
        np.concatenate([[0], np.cumsum(np.bincount(block_of_row[firsts], minlength=len(sizes)))]), pa.int32()
    )
    texts = pc.fill_null(lines.column("template").take(pa.array(firsts, pa.int64())), "").combine_chunks()
    return (
        pa.ListArray.from_arrays(offsets, pa.array(ids[firsts], pa.int64())),
        pa.ListArray.from_arrays(offsets, texts),
    )


@ray.remote(num_cpus=1)
def part_template_counts(path: str, ranks: np.ndarray, trains: np.ndarray) -> TemplateCounts:
    """The template counts (`grouping.template_profile`) of one intermediate part's training sessions."""
    table = pq.read_table(path, columns=["label", "template_ids", "templates"])
    counts = TemplateCounts()
    columns = (table.column(name).to_pylist() for name in ("label", "template_ids", "templates"))
    for rank, label, ids, texts in zip(ranks, *columns, strict=True):
        if rank >= 0 and trains[rank]:
            counts.add(label, dict(zip(ids, texts, strict=True)))
    return counts


def ranked_sessions(items: pa.Table, ranks: list[ray.ObjectRef]) -> Iterator[pa.Table]:
    """Ray Data stage: intermediate parts in, their labelled sessions out with `rank` (time order) and `part`."""
    for item in items.to_pylist():
        rank = ray.get(ranks[0])[item["index"]]
        labelled = rank >= 0
        table = pq.read_table(item["path"], columns=["block_id", "label", "lines"]).filter(pa.array(labelled))
        table = table.append_column("rank", pa.array(rank[labelled], pa.int64()))
        yield table.append_column("part", pa.array(rank[labelled] // SESSIONS_PER_PART, pa.int64()))


@dataclass
class RenderJob:
    """What every output part needs: where it goes, each rank's split (`splits.SPLIT_CODES`), how to mark and
    render."""

    output_dir: str
    splits: np.ndarray
    indicative: dict[int, str]
    max_prompt_tokens: int
    teacher: Teacher


def render_part(group: pa.Table, job: RenderJob) -> pa.Table:
    """map_groups: one output part's sessions -> prompt rows in time order, as part files of train/ and test/
    named by the part's number (and validation/); returns the part's counts (as JSON)."""
    group = group.sort_by("rank")
    number = group.column("part")[0].as_py()
    counts = split_counts()
    writers = {split: PartWriter(Path(job.output_dir) / split / part_name(number)) for split in SPLITS}
    try:
        columns = (group.column(name).to_pylist() for name in ("rank", "block_id", "label", "lines"))
        for rank, block_id, label, lines in zip(*columns, strict=True):
            split = SPLITS[job.splits[rank]]
            mark_anomaly_lines(lines, job.indicative)
            row = prompt_row(Session(block_id, lines, label), split, job.max_prompt_tokens, job.teacher)
            writers[split].write(row)
            tally_row(counts[split], row)
    finally:
        for writer in writers.values():
            writer.close()
    return pa.table({"counts": [json.dumps(counts)]})
