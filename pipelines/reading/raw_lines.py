"""Raw bytes before parsing: which lines are text, and whether a file is a text log of the configured format.

A line that is not text (NUL or control bytes, invalid UTF-8) becomes a dead letter with a reason; a file that is
not a log at all (binary, or no line of it fits the format) is a clear error before any work starts.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal

from pipelines.reading.log_formats import MalformedLine

PREVIEW_BYTES = 200  # dead letters of huge or binary lines keep this much of the line
SNIFF_BYTES = 1 << 16
# NUL and C0 control bytes are binary; \t \n \v \f \r and ESC (ANSI colours in application logs) are text.
_BINARY_BYTE = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
# Magic numbers of files people point a log reader at by mistake.
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed data (name the file *.gz to read it)",
    b"PK\x03\x04": "a zip archive",
    b"\x7fELF": "an ELF executable",
    b"PAR1": "a parquet file",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
}
InvalidUtf8 = Literal["dead_letter", "replace"]
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def preview(body: bytes) -> str:
    """The first bytes of a line as text; undecodable bytes stay visible as \\xNN escapes."""
    return body[:PREVIEW_BYTES].decode("utf-8", errors="backslashreplace")


def raw_row(source: str, offset: int, text: str, kind: str = "", error: str = "") -> dict:
    """One raw line row `{source, offset, text, kind, error}`; a good line has kind and error ""."""
    return {"source": source, "offset": offset, "text": text, "kind": kind, "error": error}


def empty_file_row(source: str) -> dict:
    """The dead letter that reports an empty file (so it is counted, not skipped)."""
    return raw_row(source, 0, "", "empty file", "empty file: no lines")


def decode_line(raw: bytes, invalid_utf8: InvalidUtf8 = "dead_letter") -> tuple[str, str, str]:
    """(text, kind, reason) of one raw line (line ending stripped); kind and reason are "" for a text line."""
    body = raw.rstrip(b"\r\n")
    bad = _BINARY_BYTE.search(body)
    if bad:
        byte = body[bad.start()]
        kind = "NUL byte" if byte == 0 else "control byte"
        return preview(body), kind, f"{kind} 0x{byte:02x} at byte {bad.start()} of the line"
    try:
        return body.decode("utf-8"), "", ""
    except UnicodeDecodeError as err:
        if invalid_utf8 == "replace":
            return body.decode("utf-8", errors="replace"), "", ""
        reason = f"invalid UTF-8 byte 0x{body[err.start]:02x} at byte {err.start} of the line"
        return preview(body), "invalid UTF-8", reason


def open_log(path: str | Path) -> BinaryIO:
    """A binary reader of a log file, decompressing `.gz` files."""
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")  # noqa: SIM115


def skip_line(handle: BinaryIO, chunk: int = 1 << 20) -> int:
    """Consume the rest of the current line in bounded chunks (a 1 GB line never sits in memory); bytes skipped."""
    skipped = 0
    while True:
        piece = handle.readline(chunk)
        skipped += len(piece)
        if not piece or piece.endswith(b"\n"):
            return skipped


def _head(path: str | Path, field: str) -> bytes:
    """Up to SNIFF_BYTES of the (decompressed) start of a file; a truncated .gz gives what it has."""
    pieces: list[bytes] = []
    size = 0
    with open_log(path) as handle:
        try:
            while size < SNIFF_BYTES:
                piece = handle.read(4096)
                if not piece:
                    break
                pieces.append(piece)
                size += len(piece)
        except gzip.BadGzipFile as err:
            raise ValueError(f"{field}: {path}: not a gzip file ({err})") from None
        except (EOFError, zlib.error):
            pass  # truncated or corrupt later on: the reader turns that into a dead letter
    return b"".join(pieces)


def check_text_log(path: str | Path, parse: Callable[[str], dict], fmt: str, field: str = "data.paths") -> None:
    """Fail naming the file unless its start looks like a text log with at least one line of format `fmt`.

    An empty file passes (it becomes an `empty file` dead letter); so does a file whose first lines are partly
    bad (those become dead letters). Only the first SNIFF_BYTES are read.
    """
    head = _head(path, field)
    if not head:
        return
    if not str(path).endswith(".gz"):
        for magic, what in _MAGIC.items():
            if head.startswith(magic):
                raise ValueError(f"{field}: {path}: not a text log: it is {what}")
    lines = head.split(b"\n")
    if len(head) >= SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the sample cut the last line (maybe inside a UTF-8 character)
    kinds: Counter[str] = Counter()
    texts = []
    for raw in lines:
        text, kind, _ = decode_line(raw)
        if kind:
            kinds[kind] += 1
        elif text.strip():
            texts.append(text)
    if sum(kinds.values()) * 2 > len(lines):
        found = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        raise ValueError(f"{field}: {path}: not a text log: of its first {len(lines)} lines {found}")
    reasons = []
    for text in texts:
        try:
            parse(text)
            return
        except MalformedLine as bad:
            reasons.append(bad.reason)
    if reasons:
        raise ValueError(
            f"data.format: {path}: none of its first {len(reasons)} lines is a {fmt} line "
            f"(first: {reasons[0]}); is data.format right for this file?"
        )
