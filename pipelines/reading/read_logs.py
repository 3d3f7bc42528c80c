"""Read inputs into ordered Ray Datasets of parsed lines (malformed ones kept as dead letters with their reason),
and template CSVs into line records."""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import ray

from pipelines.config import DataConfig
from pipelines.reading.columnar_parse import COLUMNAR_FORMATS
from pipelines.reading.columnar_read import read_gzip_shard, read_plain_shard, splice, too_long_row
from pipelines.reading.label_patch import apply_label_patch, load_label_patch, write_patch_report
from pipelines.reading.log_formats import MalformedLine, line_parser
from pipelines.reading.raw_lines import (
    GZIP_ERRORS,
    InvalidUtf8,
    check_text_log,
    decode_line,
    empty_file_row,
    open_log,
    raw_row,
    skip_line,
)
from pipelines.reading.regex_format import RegexFormat
from pipelines.reading.table_formats import (
    LINE_SCHEMA,
    read_template_records,
    require_file,
)

DEAD_LETTER_FILE = "dead_letter.jsonl"
READ_BATCH_LINES = 4096
DEFAULT_MAX_LINE_BYTES = 1 << 16

# Explicit so every batch agrees on types even when one batch is all malformed or has no block ids.
# `kind` is a dead letter's rule ("" for a good line), `error` its full reason with the offending value.
PARSED_SCHEMA = pa.schema(
    [
        *list(LINE_SCHEMA)[:2],
        pa.field("text", pa.string()),
        *list(LINE_SCHEMA)[2:],
        pa.field("kind", pa.string()),
        pa.field("error", pa.string()),
    ]
)
PARSED_FIELDS = ("label", "timestamp", "node", "level", "component", "content", "block_ids")


def plan_shards(paths: list[str], shard_bytes: int) -> list[dict]:
    """Split files into byte ranges that start and end on line starts; a .gz file is one shard (no seeking).

    An empty file is one empty shard, so that it is reported (as an `empty file` dead letter), not skipped.
    """
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
                skip_line(f)  # finish the line holding byte guess-1: the next line starts a shard
                if f.tell() < size:
                    bounds.append(f.tell())
        bounds.append(size)
        shards.extend({"source": path, "start": a, "end": b} for a, b in pairwise(bounds) if b > a or size == 0)
    return shards


def read_shard(
    shard: dict, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, invalid_utf8: InvalidUtf8 = "dead_letter"
) -> Iterator[dict]:
    """Yield `{source, offset, text, kind, error}` per line of one shard; offset is the line's first byte
    (uncompressed for .gz). A line that is not text, longer than `max_line_bytes`, the point where a truncated
    .gz stops, or an empty file is a row with `kind` and `error` set; good rows have them "".
    """
    source, offset, end = shard["source"], shard["start"], shard["end"]
    with open_log(source) as f:
        try:
            f.seek(offset)
            while end < 0 or offset < end:
                raw = f.readline(max_line_bytes + 1)
                if not raw:
                    break
                if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                    size = len(raw) + skip_line(f)
                    yield too_long_row(source, offset, raw, size, max_line_bytes)
                    offset += size
                    continue
                text, kind, error = decode_line(raw, invalid_utf8)
                yield raw_row(source, offset, text, kind, error)
                offset += len(raw)
        except GZIP_ERRORS as err:
            kind = "truncated gzip" if isinstance(err, EOFError) else "corrupt gzip"
            reason = f"{kind} ({err}): nothing after uncompressed byte {offset} could be read"
            yield raw_row(source, offset, "", kind, reason)
            return
    if offset == 0 and shard["start"] == 0:
        yield empty_file_row(source)


def read_shard_batches(
    shards: pa.Table, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, invalid_utf8: InvalidUtf8 = "dead_letter"
) -> Iterator[pa.Table]:
    """Ray Data stage: shards in, raw line tables out (columnar: row dicts cost ~10x more in Ray).

    Plain files and .gz files alike are cut into lines in large chunks (`columnar_read`); a .gz file is one shard.
    """
    for shard in shards.to_pylist():
        read = read_gzip_shard if shard["source"].endswith(".gz") else read_plain_shard
        yield from read(shard, max_line_bytes, invalid_utf8)


def parse_batch(batch: pa.Table, fmt: str, regex: RegexFormat | None = None) -> pa.Table:
    """Ray Data stage: parse each `text` into the record columns plus `kind`/`error` ("" when the line is fine).

    Rows the reader already rejected (binary, too long, ...) keep their reason and are not parsed. Formats with a
    columnar parser parse the whole batch at once; the rows it cannot vouch for go through `parse_batch_per_line`,
    so results (dead letters included) are the per-line ones.
    """
    columnar = COLUMNAR_FORMATS.get(fmt)
    if columnar is None or batch.num_rows == 0:
        return parse_batch_per_line(batch, fmt, regex)
    batch = batch.combine_chunks()
    fast, columns = columnar(batch.column("text").chunk(0))
    if "kind" in batch.column_names:
        read_ok = pc.equal(batch.column("kind"), "").to_numpy(zero_copy_only=False)
        if not read_ok.all():  # rows the reader rejected: the columnar parser's view of them is dropped
            keep = read_ok[fast]
            columns = {name: column.filter(pa.array(keep)) for name, column in columns.items()}
            fast &= read_ok
    n = int(fast.sum())
    good = batch.filter(pa.array(fast))
    columns |= {"kind": pa.array([""] * n, pa.string()), "error": pa.array([""] * n, pa.string())}
    arrays = [columns[f.name] if f.name in columns else good.column(f.name) for f in PARSED_SCHEMA]
    table = pa.Table.from_arrays(
        [array.cast(f.type) for array, f in zip(arrays, PARSED_SCHEMA, strict=True)], schema=PARSED_SCHEMA
    )
    if n == batch.num_rows:
        return table
    slow = parse_batch_per_line(batch.filter(pa.array(~fast)), fmt, regex)
    return splice(table, fast, slow)


def parse_batch_per_line(batch: pa.Table, fmt: str, regex: RegexFormat | None = None) -> pa.Table:
    """`parse_batch` one line at a time with the format's line parser (every format; owns every reason)."""
    parse = line_parser(fmt, regex)
    n = batch.num_rows
    read_kinds = batch.column("kind").to_pylist() if "kind" in batch.column_names else [""] * n
    read_errors = batch.column("error").to_pylist() if "error" in batch.column_names else [""] * n
    columns: dict[str, list] = {name: [] for name in (*PARSED_FIELDS, "kind", "error")}
    for text, read_kind, read_error in zip(batch.column("text").to_pylist(), read_kinds, read_errors, strict=True):
        try:
            if read_kind:
                raise MalformedLine(read_error, read_kind)
            record, kind, error = parse(text), "", ""
        except MalformedLine as bad:
            record, kind, error = {"content": "", "block_ids": []}, bad.kind, bad.reason
        for name in PARSED_FIELDS:
            columns[name].append(record.get(name))
        columns["kind"].append(kind)
        columns["error"].append(error)
    arrays = [
        pa.array(columns[field.name], type=field.type)
        if field.name in columns
        else batch.column(field.name).cast(field.type)
        for field in PARSED_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=PARSED_SCHEMA)


def _good_rows(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.equal(batch.column("kind"), "")).drop_columns(["text", "kind", "error"])


def check_inputs(cfg: DataConfig) -> RegexFormat | None:
    """Fail naming the file before any work unless every input exists and looks like a log of the format; the
    regex format's compiled rule (None for the others)."""
    regex = cfg.regex.to_format() if cfg.regex else None
    parse = line_parser(cfg.format, regex)
    for path in cfg.paths:
        require_file(path, "data.paths")
        check_text_log(path, parse, cfg.format)
    return regex


def parsed_lines(cfg: DataConfig, regex: RegexFormat | None) -> ray.data.Dataset:
    """Every line of the text inputs, parsed (dead letters with `kind`/`error` set), streaming in file order."""
    # Sessions and the train/test split are chronological: Ray Data must keep shard and batch order.
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    shards = plan_shards(cfg.paths, cfg.shard_bytes)
    return (
        ray.data.from_items(shards, override_num_blocks=len(shards))
        .map_batches(
            read_shard_batches,
            fn_kwargs={"max_line_bytes": cfg.max_line_bytes, "invalid_utf8": cfg.invalid_utf8},
            batch_size=1,
            batch_format="pyarrow",
        )
        # batch_size=None: a batch size here would make the fused read+parse task bundle that many *shards*.
        .map_batches(
            parse_batch, fn_kwargs={"fmt": cfg.format, "regex": regex}, batch_format="pyarrow", batch_size=None
        )
    )


def good_lines(parsed: ray.data.Dataset) -> ray.data.Dataset:
    """The parsed lines that are not dead letters, without the raw text."""
    return parsed.map_batches(_good_rows, batch_format="pyarrow", batch_size=None)


def read_template_lines(cfg: DataConfig) -> tuple[pa.Table, dict[str, int]]:
    """The rows of template CSVs as line records, in input order, with `data.label_patch` applied as they are read
    (its report is left in the output folder), and the dead letters per kind (none: a bad table fails whole).
    Text logs stream instead (`stream_sessions`, `stream_blocks`)."""
    patch_report = None
    records = [record for path in cfg.paths for record in read_template_records(path)]
    if cfg.label_patch:
        patch_report = apply_label_patch(records, load_label_patch(cfg.label_patch))
    lines = pa.Table.from_pylist(records, schema=LINE_SCHEMA)
    # Tables have no malformed lines (bad input fails as a whole), but every run writes the same files.
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / DEAD_LETTER_FILE).write_text("")
    write_patch_report(output_dir, patch_report)
    return lines, {}
