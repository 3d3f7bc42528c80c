"""Bad input without Ray: every kind of broken line is a dead letter with its offset; a non-log is a clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pipelines.reading.log_formats import line_parser
from pipelines.reading.raw_lines import PREVIEW_BYTES, SNIFF_BYTES, check_text_log, decode_line
from pipelines.reading.read_logs import plan_shards, read_shard

GOOD = "- 1117838570 2005.06.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO line {}"
BGL = line_parser("bgl")


def good(i: int) -> bytes:
    return GOOD.format(i).encode() + b"\n"


def rows_of(path: Path, shard_bytes: int = 1 << 20, **kwargs) -> list[dict]:
    return [row for shard in plan_shards([str(path)], shard_bytes) for row in read_shard(shard, **kwargs)]


def letters(rows: list[dict]) -> list[tuple[int, str]]:
    return [(row["offset"], row["kind"]) for row in rows if row["kind"]]


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        (b"abc\x00def\r\n", "NUL byte", "NUL byte 0x00 at byte 3 of the line"),
        (b"ab\x07c\n", "control byte", "control byte 0x07 at byte 2 of the line"),
        (b"caf\xe9 latin-1\n", "invalid UTF-8", "invalid UTF-8 byte 0xe9 at byte 3 of the line"),
        (b"\x1b[31mred\x1b[0m\ttab\r\n", "", ""),  # ANSI colours and tabs are text
        ("caf\u00e9 \u65e5\u672c\n".encode(), "", ""),
    ],
)
def test_decode_line_names_the_first_bad_byte(raw: bytes, kind: str, reason: str):
    text, got_kind, got_reason = decode_line(raw)
    assert (got_kind, got_reason) == (kind, reason)
    if not kind:
        assert text == raw.decode().rstrip("\r\n")


def test_invalid_utf8_is_a_dead_letter_with_visible_bytes_or_replaced_on_request():
    assert decode_line(b"caf\xe9\n")[0] == "caf\\xe9"
    assert decode_line(b"caf\xe9\n", "replace") == ("caf\ufffd", "", "")


def test_binary_garbage_nul_and_non_utf8_lines_are_dead_letters_at_their_offsets(tmp_path: Path):
    path = tmp_path / "mixed.log"
    parts = [good(0), b"\xff\xfe\xfa garbage\n", good(1), b"x\x00y\n", good(2), b"\x01\x02\x03\x04\n", good(3)]
    path.write_bytes(b"".join(parts))
    rows = rows_of(path, shard_bytes=1024)
    starts = [sum(len(part) for part in parts[:i]) for i in range(len(parts))]
    assert letters(rows) == [(starts[1], "invalid UTF-8"), (starts[3], "NUL byte"), (starts[5], "control byte")]
    assert [row["text"] for row in rows if not row["kind"]] == [GOOD.format(i) for i in range(4)]


def test_a_1mb_line_is_one_dead_letter_and_the_lines_around_it_survive(tmp_path: Path):
    path = tmp_path / "long.log"
    huge = b"- " + b"x" * (1 << 20) + b"\n"
    path.write_bytes(good(0) + huge + good(1))
    for shard_bytes in (4096, 1 << 22):  # the long line spans many shard guesses, or sits inside one shard
        rows = rows_of(path, shard_bytes=shard_bytes, max_line_bytes=65536)
        assert letters(rows) == [(len(good(0)), "line too long")]
        letter = next(row for row in rows if row["kind"])
        assert letter["error"] == f"line of {len(huge)} bytes is longer than data.max_line_bytes (65536)"
        assert len(letter["text"]) == PREVIEW_BYTES
        assert [(row["offset"], row["text"]) for row in rows if not row["kind"]] == [
            (0, GOOD.format(0)),
            (len(good(0)) + len(huge), GOOD.format(1)),
        ]


def test_a_line_of_exactly_max_line_bytes_is_kept(tmp_path: Path):
    path = tmp_path / "edge.log"
    path.write_bytes(b"a" * 300 + b"\n" + b"b" * 301)
    assert [(row["offset"], row["kind"]) for row in rows_of(path, max_line_bytes=300)] == [
        (0, ""),
        (301, "line too long"),
    ]


def test_truncated_gzip_keeps_every_complete_line_before_the_cut(tmp_path: Path):
    lines = b"".join(good(i) for i in range(2000))
    whole = gzip.compress(lines)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(whole[: len(whole) // 2])
    rows = rows_of(path)
    kept = [row for row in rows if not row["kind"]]
    assert rows[-1]["kind"] == "truncated gzip" and letters(rows) == [(rows[-1]["offset"], "truncated gzip")]
    assert "Compressed file ended before the end-of-stream marker" in rows[-1]["error"]
    # Every kept line is whole and in order, and the letter's offset is where the kept lines end.
    assert [row["text"] for row in kept] == [GOOD.format(i) for i in range(len(kept))]
    assert rows[-1]["offset"] == sum(len(good(i)) for i in range(len(kept))) and len(kept) > 100


def test_corrupt_gzip_is_a_dead_letter(tmp_path: Path):
    whole = gzip.compress(b"".join(good(i) for i in range(50)))
    path = tmp_path / "bad.log.gz"
    path.write_bytes(whole[:20] + bytes(b ^ 0x55 for b in whole[20:-8]) + whole[-8:])
    rows = rows_of(path)
    assert [row["kind"] for row in rows if row["kind"]] == ["corrupt gzip"]


def test_an_empty_file_is_one_dead_letter(tmp_path: Path):
    plain, packed = tmp_path / "empty.log", tmp_path / "empty.log.gz"
    plain.write_bytes(b"")
    packed.write_bytes(gzip.compress(b""))
    for path in (plain, packed):
        rows = rows_of(path)
        expected = [(0, "empty file", "empty file: no lines")]
        assert [(row["offset"], row["kind"], row["error"]) for row in rows] == expected


def test_a_binary_file_is_not_a_log(tmp_path: Path):
    path = tmp_path / "blob.log"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ValueError, match=r"data.paths: .*blob.log: not a text log: of its first 41 lines .*"):
        check_text_log(path, BGL, "bgl")


@pytest.mark.parametrize(
    ("name", "head", "what"),
    [
        ("a.log", gzip.compress(b"x\n"), "gzip-compressed data \\(name the file \\*.gz to read it\\)"),
        ("a.parquet", b"PAR1\x15\x04", "a parquet file"),
        ("a.png", b"\x89PNG\r\n\x1a\n", "a PNG image"),
    ],
)
def test_known_binary_files_are_named(tmp_path: Path, name: str, head: bytes, what: str):
    path = tmp_path / name
    path.write_bytes(head)
    with pytest.raises(ValueError, match=f"data.paths: .*{name}: not a text log: it is {what}"):
        check_text_log(path, BGL, "bgl")


def test_a_gz_name_on_a_plain_file_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "plain.log.gz"
    path.write_bytes(good(0))
    with pytest.raises(ValueError, match="data.paths: .*plain.log.gz: not a gzip file"):
        check_text_log(path, BGL, "bgl")


def test_a_file_in_another_format_names_data_format(tmp_path: Path):
    path = tmp_path / "hdfs.log"
    path.write_bytes(b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating\n" * 3)
    with pytest.raises(ValueError, match=r"data.format: .*hdfs.log: none of its first 3 lines is a bgl line \(first: "):
        check_text_log(path, BGL, "bgl")
    check_text_log(path, line_parser("hdfs"), "hdfs")  # the right format passes


def test_a_log_with_some_bad_lines_passes_the_check(tmp_path: Path):
    path = tmp_path / "some.log"
    path.write_bytes(b"garbage\n\x00\x00\n" + good(0) + b"\xff\n" + good(1))
    check_text_log(path, BGL, "bgl")
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    check_text_log(empty, BGL, "bgl")


def test_only_the_head_is_sniffed(tmp_path: Path):
    path = tmp_path / "big.log"
    path.write_bytes(good(0) * (SNIFF_BYTES // len(good(0)) + 10) + b"\x00" * 100)
    check_text_log(path, BGL, "bgl")
