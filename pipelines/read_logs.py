"""Read inputs into an ordered Ray Dataset of parsed lines; malformed lines go to a dead-letter file, counted."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import ray

from pipelines.config import DataConfig
from pipelines.label_patch import apply_label_patch, load_label_patch, write_patch_report
from pipelines.log_formats import MalformedLine, parse_line
from pipelines.table_formats import (
    LINE_SCHEMA,
    LOGLEAD_COLUMNS,
    check_loglead_events,
    loglead_lines,
    read_template_records,
    require_file,
)

DEAD_LETTER_FILE = "dead_letter.jsonl"
READ_BATCH_LINES = 4096

# Explicit so every batch agrees on types even when one batch is all malformed or has no block ids.
PARSED_SCHEMA = pa.schema(
    [*list(LINE_SCHEMA)[:2], pa.field("text", pa.string()), *list(LINE_SCHEMA)[2:], pa.field("error", pa.string())]
)
RAW_SCHEMA = pa.schema([("source", pa.string()), ("offset", pa.int64()), ("text", pa.string())])
PARSED_FIELDS = ("label", "timestamp", "node", "level", "component", "content", "block_ids")


def plan_shards(paths: list[str], shard_bytes: int) -> list[dict]:
    """Split files into byte ranges that start and end on line starts; a .gz file is one shard (no seeking)."""
    shards = []
    for path in paths:
        if path.endswith(".gz"):
            shards.append({"source": path, "start": 0, "end": -1})
            continue
        size = os.path.getsize(path)
        bounds = [0]
        with open(path, "rb") as f:
            for guess in range(shard_bytes, size, shard_bytes):
                if guess <= bounds[-1]:
                    continue  # a line longer than a shard already covers this guess
                f.seek(guess - 1)
                f.readline()  # finish the line holding byte guess-1: the next line starts a shard
                if f.tell() < size:
                    bounds.append(f.tell())
        bounds.append(size)
        shards.extend({"source": path, "start": a, "end": b} for a, b in pairwise(bounds) if b > a)
    return shards


def read_shard(shard: dict) -> Iterator[dict]:
    """Yield `{source, offset, text}` per line of one shard; offset is the line's first byte (uncompressed for .gz)."""
    source, offset, end = shard["source"], shard["start"], shard["end"]
    opener = gzip.open if source.endswith(".gz") else open
    with opener(source, "rb") as f:
        f.seek(offset)
        while end < 0 or offset < end:
            raw = f.readline()
            if not raw:
                break
            # Undecodable bytes must not kill a 200M-line run; the replacement char keeps the line visible.
            yield {"source": source, "offset": offset, "text": raw.decode("utf-8", errors="replace").rstrip("\r\n")}
            offset += len(raw)


def read_shard_batches(shards: pa.Table) -> Iterator[pa.Table]:
    """Ray Data stage: shards in, `{source, offset, text}` tables out (columnar: row dicts cost ~10x more in Ray)."""
    for shard in shards.to_pylist():
        rows: list[dict] = []
        for row in read_shard(shard):
            rows.append(row)
            if len(rows) == READ_BATCH_LINES:
                yield pa.Table.from_pylist(rows, schema=RAW_SCHEMA)
                rows = []
        if rows:
            yield pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


def parse_batch(batch: pa.Table, fmt: str) -> pa.Table:
    """Ray Data stage: parse each `text` into the record columns plus `error` ("" when the line is fine)."""
    columns: dict[str, list] = {name: [] for name in (*PARSED_FIELDS, "error")}
    for text in batch.column("text").to_pylist():
        try:
            record, error = parse_line(text, fmt), ""
        except MalformedLine as bad:
            record, error = {"content": "", "block_ids": []}, bad.reason
        for name in PARSED_FIELDS:
            columns[name].append(record.get(name))
        columns["error"].append(error)
    arrays = [
        batch.column(field.name).cast(field.type)
        if field.name in batch.column_names
        else pa.array(columns[field.name], type=field.type)
        for field in PARSED_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=PARSED_SCHEMA)


def _malformed_rows(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.not_equal(batch.column("error"), ""))


def _good_rows(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.equal(batch.column("error"), "")).drop_columns(["text", "error"])


def write_dead_letters(malformed: ray.data.Dataset, path: Path) -> int:
    """Stream malformed rows to JSONL `{source, offset, reason, text}`; returns how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for batch in malformed.iter_batches(batch_format="pyarrow", batch_size=READ_BATCH_LINES):
            for row in batch.select(["source", "offset", "error", "text"]).to_pylist():
                letter = {"source": row["source"], "offset": row["offset"], "reason": row["error"], "text": row["text"]}
                out.write(json.dumps(letter) + "\n")
                count += 1
    return count


def read_logs(cfg: DataConfig) -> tuple[ray.data.Dataset, int]:
    """Parsed good lines in file order (materialized) and the number of malformed lines sent to dead letters."""
    # Sessions and the train/test split are chronological: Ray Data must keep shard and batch order.
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    for path in cfg.paths:
        require_file(path, "data.paths")
    shards = plan_shards(cfg.paths, cfg.shard_bytes)
    parsed = (
        ray.data.from_items(shards, override_num_blocks=len(shards))
        .map_batches(read_shard_batches, batch_size=1, batch_format="pyarrow")
        # batch_size=None: a batch size here would make the fused read+parse task bundle that many *shards*.
        .map_batches(parse_batch, fn_kwargs={"fmt": cfg.format}, batch_format="pyarrow", batch_size=None)
        .materialize()  # one read of the corpus feeds both the dead letters and the good rows
    )
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    malformed = write_dead_letters(
        parsed.map_batches(_malformed_rows, batch_format="pyarrow"), output_dir / DEAD_LETTER_FILE
    )
    good = parsed.map_batches(_good_rows, batch_format="pyarrow").materialize()
    return good, malformed


def read_loglead_events(cfg: DataConfig) -> ray.data.Dataset:
    """LogLead events parquet files as line records, in file order (offset -1: the driver numbers rows)."""
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    for path in cfg.paths:
        check_loglead_events(path)
    parts = [
        ray.data.read_parquet(path)
        .select_columns(list(LOGLEAD_COLUMNS))
        .map_batches(loglead_lines, fn_kwargs={"source": path}, batch_format="pyarrow")
        for path in cfg.paths
    ]
    return (parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]).materialize()


def read_lines(cfg: DataConfig) -> tuple[ray.data.Dataset, int]:
    """Good line records of any configured format, in input order, and how many lines went to dead letters.

    Template CSVs get `data.label_patch` applied as they are read; its report is left in the output folder.
    """
    patch_report = None
    if cfg.format == "loglead_hdfs":
        lines = read_loglead_events(cfg)
    elif cfg.format == "templates":
        records = [record for path in cfg.paths for record in read_template_records(path)]
        if cfg.label_patch:
            patch_report = apply_label_patch(records, load_label_patch(cfg.label_patch))
        lines = ray.data.from_arrow(pa.Table.from_pylist(records, schema=LINE_SCHEMA))
    else:
        return read_logs(cfg)
    # Tables have no malformed lines (bad input fails as a whole), but every run writes the same files.
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / DEAD_LETTER_FILE).write_text("")
    write_patch_report(output_dir, patch_report)
    return lines, 0
