"""Read a plain (not .gz) shard in large chunks and cut it into a raw line table with numpy and Arrow.

Gives exactly the rows `read_logs.read_shard` gives line by line: same offsets, texts, kinds and reasons. Lines
that are too long, hold a binary byte or are not UTF-8 are handed to the per-line rules (`decode_line`), and a line
longer than `max_line_bytes` is never held whole: reading skips past it in bounded pieces.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.raw_lines import InvalidUtf8, decode_line, empty_file_row, preview, raw_row, skip_line

CHUNK_BYTES = 4 << 20
RAW_SCHEMA = pa.schema(
    [(name, pa.int64() if name == "offset" else pa.string()) for name in ("source", "offset", "text", "kind", "error")]
)
# Bytes that make a line binary (raw_lines._BINARY_BYTE): NUL and C0 controls except \t \n \v \f \r and ESC.
_BINARY = np.zeros(256, dtype=bool)
_BINARY[[*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F]] = True


def too_long_row(source: str, offset: int, head: bytes, size: int, max_line_bytes: int) -> dict:
    """The dead letter of a line of `size` bytes (line ending included) that starts with `head`."""
    reason = f"line of {size} bytes is longer than data.max_line_bytes ({max_line_bytes})"
    return raw_row(source, offset, preview(head), "line too long", reason)


def _rows_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


def _line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start of each line and of the next one (`readline` semantics: no empty line after a final newline)."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A)
    starts = np.concatenate([[0], newlines + 1])
    if starts[-1] == len(data):
        starts = starts[:-1]
    return starts, np.append(starts[1:], len(data))


def _utf8_lines(lines: pa.Array, needs_check: np.ndarray) -> tuple[pa.Array | None, np.ndarray]:
    """`lines` as strings when all are UTF-8 (the common case), else None and which lines are not."""
    try:
        return lines.cast(pa.string()), needs_check
    except pa.ArrowInvalid:
        bad = needs_check.copy()
        for index, raw in enumerate(lines.to_pylist()):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                bad[index] = True
        return None, bad


def lines_table(
    source: str, first_offset: int, data: bytes, max_line_bytes: int, invalid_utf8: InvalidUtf8
) -> pa.Table:
    """Raw rows of `data`, whole lines read from `first_offset` (the last one may lack its newline)."""
    starts, ends = _line_bounds(data)
    n = len(starts)
    width = ends - starts
    body = width - (np.frombuffer(data, dtype=np.uint8)[ends - 1] == 0x0A)  # readline's length, newline excluded
    slow = body > max_line_bytes
    binary = np.flatnonzero(_BINARY[np.frombuffer(data, dtype=np.uint8)])
    if len(binary):
        slow[np.searchsorted(starts, binary, side="right") - 1] = True
    offsets_type = pa.int32() if len(data) < 1 << 31 else pa.int64()
    binary_type = pa.binary() if offsets_type == pa.int32() else pa.large_binary()
    lines = pa.Array.from_buffers(
        binary_type, n, [None, pa.array(np.append(starts, len(data)), offsets_type).buffers()[1], pa.py_buffer(data)]
    )
    texts, slow = _utf8_lines(lines, slow)
    if texts is None or slow.any():
        texts = lines.filter(pa.array(~slow)).cast(pa.string())
    texts = pc.utf8_rtrim(texts, characters="\r\n")
    if binary_type != pa.binary():
        texts = texts.cast(pa.string())
    fast_count = len(texts)
    table = pa.table(
        {
            "source": pa.array([source] * fast_count, pa.string()),
            "offset": pa.array(starts[~slow] + first_offset, pa.int64()),
            "text": texts,
            "kind": pa.array([""] * fast_count, pa.string()),
            "error": pa.array([""] * fast_count, pa.string()),
        },
        schema=RAW_SCHEMA,
    )
    if fast_count == n:
        return table
    rows = []
    for index in np.flatnonzero(slow):
        raw = data[starts[index] : ends[index]]
        offset = int(starts[index]) + first_offset
        if body[index] > max_line_bytes:
            rows.append(too_long_row(source, offset, raw[: max_line_bytes + 1], len(raw), max_line_bytes))
        else:
            rows.append(raw_row(source, offset, *decode_line(raw, invalid_utf8)))
    return splice(table, ~slow, _rows_table(rows))


def splice(fast: pa.Table, is_fast: np.ndarray, slow: pa.Table) -> pa.Table:
    """Interleave `fast` rows (where `is_fast`) and `slow` rows (elsewhere) back into their original order."""
    positions = np.concatenate([np.flatnonzero(is_fast), np.flatnonzero(~is_fast)])
    return pa.concat_tables([fast, slow]).take(pa.array(np.argsort(positions, kind="stable")))


def read_plain_shard(
    shard: dict, max_line_bytes: int, invalid_utf8: InvalidUtf8 = "dead_letter", chunk_bytes: int = CHUNK_BYTES
) -> Iterator[pa.Table]:
    """Raw line tables of one byte range of an uncompressed file, a chunk of whole lines at a time."""
    source, offset, end = shard["source"], shard["start"], shard["end"]
    pending = b""  # the start of a line whose end is not read yet; offset is where it starts
    with open(source, "rb") as handle:
        handle.seek(offset)
        while True:
            piece = handle.read(min(chunk_bytes, end - offset - len(pending)))
            data = pending + piece
            cut = len(data) if not piece else data.rfind(b"\n") + 1
            if cut:
                yield lines_table(source, offset, data[:cut], max_line_bytes, invalid_utf8)
                offset += cut
            pending = data[cut:]
            if not piece:
                break
            if len(pending) > max_line_bytes:  # no newline yet: too long whatever its end, so skip it unread
                size = len(pending) + skip_line(handle)
                yield _rows_table([too_long_row(source, offset, pending[: max_line_bytes + 1], size, max_line_bytes)])
                offset += size
                pending = b""
    if offset == 0 and shard["start"] == 0:
        yield _rows_table([empty_file_row(source)])
