"""Read a shard (a byte range of a plain file, or a whole .gz) in large chunks and cut it into raw line tables with
numpy and Arrow.

Gives exactly the rows `read_logs.read_shard` gives line by line: same offsets, texts, kinds and reasons. Lines
that are too long, hold a binary byte or are not UTF-8 are handed to the per-line rules (`decode_line`), and a line
longer than `max_line_bytes` is never held whole: reading skips past it in bounded pieces.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.reading.raw_lines import GZIP_ERRORS, InvalidUtf8, decode_line, empty_file_row, preview, raw_row

CHUNK_BYTES = 4 << 20
GZIP_READ_BYTES = 256 << 10  # compressed bytes per zlib call: ~2-5 MB of log text
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


class LineCutter:
    """Cuts a byte stream, given in pieces cut anywhere, into raw line tables, a chunk of whole lines at a time.

    A line longer than `max_line_bytes` is never held whole: its first bytes are kept for the dead letter, the rest
    is skipped. `offset` is always just past the last line given, also when the stream breaks off.
    """

    def __init__(self, source: str, offset: int, max_line_bytes: int, invalid_utf8: InvalidUtf8):
        self.source, self.offset, self.max_line_bytes, self.invalid_utf8 = source, offset, max_line_bytes, invalid_utf8

    def _too_long(self, head: bytes, size: int) -> pa.Table:
        table = _rows_table([too_long_row(self.source, self.offset, head, size, self.max_line_bytes)])
        self.offset += size
        return table

    def _lines(self, data: bytes) -> pa.Table:
        table = lines_table(self.source, self.offset, data, self.max_line_bytes, self.invalid_utf8)
        self.offset += len(data)
        return table

    def tables(self, pieces: Iterable[bytes]) -> Iterator[pa.Table]:
        pending = b""
        long_head, long_size = None, 0  # inside a too-long line: its first bytes and its size so far
        for piece in pieces:
            if long_head is not None:
                newline = piece.find(b"\n")
                if newline < 0:
                    long_size += len(piece)
                    continue
                yield self._too_long(long_head, long_size + newline + 1)
                long_head, piece = None, piece[newline + 1 :]
            data = pending + piece
            cut = data.rfind(b"\n") + 1
            if cut:
                yield self._lines(data[:cut])
            pending = data[cut:]
            if len(pending) > self.max_line_bytes:  # no newline yet: too long whatever its end
                long_head, long_size, pending = pending[: self.max_line_bytes + 1], len(pending), b""
        if long_head is not None:  # the last line, without a newline
            yield self._too_long(long_head, long_size)
        elif pending:
            yield self._lines(pending)


def file_pieces(path: str, start: int, end: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Bytes `start` to `end` of a file, `chunk_bytes` at a time."""
    with open(path, "rb") as handle:
        handle.seek(start)
        while start < end and (piece := handle.read(min(chunk_bytes, end - start))):
            start += len(piece)
            yield piece


def gzip_pieces(path: str, read_bytes: int = GZIP_READ_BYTES) -> Iterator[bytes]:
    """The decompressed bytes of a .gz file (every member; zero padding after one is skipped, as `gzip` does), all
    that zlib can give; EOFError after them when the stream is cut short, zlib.error where it is corrupt."""
    decoder, ended = zlib.decompressobj(31), True
    with open(path, "rb") as handle:
        compressed = b""
        while compressed or (compressed := handle.read(read_bytes)):
            piece = decoder.decompress(compressed)
            compressed, ended = b"", decoder.eof
            if piece:
                yield piece
            if decoder.eof:  # the next member, if any
                compressed = decoder.unused_data.lstrip(b"\0")
                decoder = zlib.decompressobj(31) if compressed else decoder
    if not ended:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")


def read_plain_shard(
    shard: dict, max_line_bytes: int, invalid_utf8: InvalidUtf8 = "dead_letter", chunk_bytes: int = CHUNK_BYTES
) -> Iterator[pa.Table]:
    """Raw line tables of one byte range of an uncompressed file, a chunk of whole lines at a time."""
    cutter = LineCutter(shard["source"], shard["start"], max_line_bytes, invalid_utf8)
    yield from cutter.tables(file_pieces(shard["source"], shard["start"], shard["end"], chunk_bytes))
    if cutter.offset == 0 and shard["start"] == 0:
        yield _rows_table([empty_file_row(shard["source"])])


def read_gzip_shard(
    shard: dict, max_line_bytes: int, invalid_utf8: InvalidUtf8 = "dead_letter", read_bytes: int = GZIP_READ_BYTES
) -> Iterator[pa.Table]:
    """Raw line tables of a whole .gz file; a cut or corrupt stream ends in one dead letter at the uncompressed
    offset after the last whole line (the part of a line before the break is not a line)."""
    cutter = LineCutter(shard["source"], 0, max_line_bytes, invalid_utf8)
    try:
        yield from cutter.tables(gzip_pieces(shard["source"], read_bytes))
    except GZIP_ERRORS as err:
        kind = "truncated gzip" if isinstance(err, EOFError) else "corrupt gzip"
        reason = f"{kind} ({err}): nothing after uncompressed byte {cutter.offset} could be read"
        yield _rows_table([raw_row(shard["source"], cutter.offset, "", kind, reason)])
        return
    if cutter.offset == 0:
        yield _rows_table([empty_file_row(shard["source"])])
