"""The Ray Data stages of block sessions (`stream_blocks`): what runs in workers, one batch, group or part at a time.

Lines -> `block_lines` (dead letters and counts to side files, match, one row per block id a line names) ->
hash shuffle by block id -> `block_session` (one session row per block) -> intermediate parquet parts ->
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

from pipelines.prompt_rows import prompt_row, split_counts, tally_row
from pipelines.prompt_store import PartWriter, part_name
from pipelines.sessions import Session, TemplateCounts, mark_anomaly_lines
from pipelines.stream_sessions import LETTERS_DIR, SPLITS, frozen_matcher
from pipelines.table_formats import LINE_SCHEMA, LOGLEAD_COLUMNS, loglead_lines
from pipelines.teacher import Teacher
from pipelines.templates import UNSEEN_ID

STATS_DIR = ".block_stats"
LOGLEAD_BATCH_ROWS = 1 << 16
SESSIONS_PER_PART = 4096  # prompt rows per output part (8 row groups)
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
    return explode_blocks(matched, job.paths)


def write_letters(bad: pa.Table, path: Path) -> Counter[str]:
    """Malformed rows as dead-letter JSONL `{source, offset, kind, reason, text}`; how many of each kind."""
    counts: Counter[str] = Counter()
    if not bad.num_rows:
        return counts
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for row in bad.select(["source", "offset", "kind", "error", "text"]).to_pylist():
            letter = {k: row[k] for k in ("source", "offset", "kind")} | {"reason": row["error"], "text": row["text"]}
            out.write(json.dumps(letter) + "\n")
            counts[row["kind"]] += 1
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


_LABELS: dict[str, dict[str, str]] = {}


def shared_labels(ref: ray.ObjectRef) -> dict[str, str]:
    """The labels dict the driver put in the object store, fetched once per worker process."""
    key = ref.hex()
    if key not in _LABELS:
        _LABELS.clear()
        _LABELS[key] = ray.get(ref)
    return _LABELS[key]


SESSION_SCHEMA_FIELDS = [
    pa.field("block_id", pa.string()),
    pa.field("label", pa.string()),
    pa.field("first_ts", pa.float64()),
    pa.field("first_file", pa.int64()),
    pa.field("first_offset", pa.int64()),
    pa.field("first_slot", pa.int64()),
    pa.field("template_ids", pa.list_(pa.int64())),
    pa.field("templates", pa.list_(pa.string())),
]


def block_session(group: pa.Table, labels: list[ray.ObjectRef]) -> pa.Table:
    """map_groups: one block's rows -> its session row. Lines by time, then input order (`sessions.order_by_time`:
    a line without time sorts last); the block's time is its first line's (inf: none), its place among blocks with
    the same time is where it first appears (line, then slot). An unlabelled block keeps no lines: it is counted."""
    block_id = group.column("block_id")[0].as_py()
    label = shared_labels(labels[0]).get(block_id)
    keyed = group.append_column("ts", pc.fill_null(group.column("timestamp"), math.inf))
    lines = keyed.sort_by([("ts", "ascending"), ("file_index", "ascending"), ("offset", "ascending")])
    first = keyed.sort_by([("file_index", "ascending"), ("offset", "ascending"), ("slot", "ascending")]).slice(0, 1)
    templates: dict[int, str] = {}
    for template_id, text in zip(lines.column("template_id").to_pylist(), lines.column("template").to_pylist()):
        if template_id is not None and template_id != UNSEEN_ID:
            templates.setdefault(template_id, text or "")
    kept = lines.select(LINE_FIELDS).slice(0, lines.num_rows if label is not None else 0).combine_chunks()
    structs = pa.StructArray.from_arrays([column.combine_chunks() for column in kept.columns], names=LINE_FIELDS)
    values = [
        [block_id],
        [label],
        [lines.column("ts")[0].as_py()],
        [first.column("file_index")[0].as_py()],
        [first.column("offset")[0].as_py()],
        [first.column("slot")[0].as_py()],
        [list(templates)],
        [list(templates.values())],
    ]
    columns = [pa.array(value, f.type) for value, f in zip(values, SESSION_SCHEMA_FIELDS, strict=True)]
    columns.append(pa.ListArray.from_arrays(pa.array([0, kept.num_rows], pa.int32()), structs))
    return pa.Table.from_arrays(columns, names=[*(f.name for f in SESSION_SCHEMA_FIELDS), "lines"])


@ray.remote(num_cpus=1)
def part_template_counts(path: str, ranks: np.ndarray, trains: np.ndarray) -> TemplateCounts:
    """The template counts (`sessions.template_profile`) of one intermediate part's training sessions."""
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
    """What every output part needs: where it goes, which ranks train, how to mark and render."""

    output_dir: str
    trains: np.ndarray
    indicative: dict[int, str]
    max_prompt_tokens: int
    teacher: Teacher


def render_part(group: pa.Table, job: RenderJob) -> pa.Table:
    """map_groups: one output part's sessions -> prompt rows in time order, as part files of train/ and test/
    named by the part's number; returns the part's counts (as JSON)."""
    group = group.sort_by("rank")
    number = group.column("part")[0].as_py()
    counts = split_counts()
    writers = {split: PartWriter(Path(job.output_dir) / split / part_name(number)) for split in SPLITS}
    try:
        columns = (group.column(name).to_pylist() for name in ("rank", "block_id", "label", "lines"))
        for rank, block_id, label, lines in zip(*columns, strict=True):
            split = "train" if job.trains[rank] else "test"
            mark_anomaly_lines(lines, job.indicative)
            row = prompt_row(Session(block_id, lines, label), split, job.max_prompt_tokens, job.teacher)
            writers[split].write(row)
            tally_row(counts[split], row)
    finally:
        for writer in writers.values():
            writer.close()
    return pa.table({"counts": [json.dumps(counts)]})
