"""The columnar reader and parser give exactly the per-line path's rows, on the bundled data and on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.reading.columnar_parse import hdfs_columns
from pipelines.reading.columnar_read import RAW_SCHEMA, read_gzip_shard, read_plain_shard, splice
from pipelines.reading.read_logs import (
    parse_batch,
    parse_batch_per_line,
    plan_shards,
    read_shard,
)

DATA = Path(__file__).resolve().parents[2] / "data"
GOOD = b"- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO"
TB = b"- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 "
BAD_BGL = [
    GOOD + b" instruction cache parity error corrected",
    GOOD + b" trailing spaces and tab   \t",
    GOOD,  # no content
    GOOD + b"   ",
    b"  " + GOOD + b" leading whitespace",
    GOOD.replace(b" RAS ", b"\tRAS\t\t") + b" tabs between fields",
    b"",  # blank
    b"   \r",  # blank with CR
    GOOD + b" crlf\r",
    GOOD + b" two crs\r\r",
    b"this is not a BGL line",
    GOOD.replace(b"1117838570", b"11178385701234567") + b" 17-digit timestamp",
    GOOD.replace(b"1117838570", b"xx17838570") + b" bad timestamp",
    GOOD.replace(b"2005.06.03", b"2005.6.03") + b" bad date",
    GOOD.replace(b"- ", b"", 1) + b" unlabelled live line",
    GOOD.replace(b"2005.06.03", "２００５.06.03".encode()) + b" unicode digits in the date",
    GOOD + " unicode trailing space\u3000".encode(),
    GOOD + " \u3000unicode leading space".encode(),
    GOOD.replace(b" RAS ", " RAS\u2003".encode()) + b" unicode space in the header",
    GOOD + " caf\u00e9 \u65e5\u672c content".encode(),
    GOOD + b" \xff\xfe not utf-8",
    GOOD + b" NUL \x00 byte",
    b"\x01\x02\x03 binary garbage",
    GOOD + b" ESC \x1b[31mred\x1b[0m",
    GOOD + b" form\x0cfeed and vtab\x0b",
    b"- " + b"y" * 3000,  # too long at max_line_bytes=1024
    b"x" * 1024,  # exactly max_line_bytes: kept (a bad BGL line)
    GOOD + b" last line",
]
BAD_SYSLOG = [
    TB + b"crond[2915]: (root) CMD (run-parts /etc/cron.hourly)",
    TB + b"kernel: ACPI: x",
    TB + b"sshd(pam_unix)[1234]: session opened",
    TB + b"no tag here",
    TB + b"tag:",
    TB + b"tag:no space",
    TB + b"[1]: odd",
    TB + "caf\u00e9[1]: non-ascii tag".encode(),
    TB + "kernel: caf\u00e9".encode(),
    TB.replace(b"Nov 9", b"Nov 09") + b"x: leading zero day",
    TB.replace(b"Nov 9", b"Nov 32") + b"x: day 32",
    TB.replace(b"Nov 9", b"Nox 9") + b"x: bad month",
    TB.replace(b"12:01:01", b"12:1:01") + b"x: bad clock",
    TB.rstrip(),  # no location rest
    TB + b"trailing  \t ",
    b"",
]

HDFS = b"081109 203615 148 INFO dfs.DataNode$PacketResponder: "
BAD_HDFS = [
    HDFS + b"PacketResponder 1 for block blk_38865049064139660 terminating",  # one block id
    HDFS + b"Verification succeeded",  # none
    HDFS + b"ask 10.250.14.224:50010 to replicate blk_-1608999687919862906 to datanode(s) 10.251.215.16:50010",
    HDFS + b"ask to delete blk_1 blk_-2 blk_1 blk_3 blk_-2",  # several, repeated: first sightings in order
    HDFS + b"blk_7 blk_7",
    HDFS + b"blk_- blk_x blk_4y blk_55",  # `blk_` without digits is no id; digits stop at the first non-digit
    HDFS + b"blk_-1blk_2",
    HDFS + b"trailing spaces and tab blk_9   \t",
    HDFS + b"crlf blk_10\r",
    HDFS + b"tab inside\tblk_11 content",
    HDFS + "content caf\u00e9 \u65e5\u672c end".encode(),  # non-ASCII content naming no block: columnar
    HDFS + "unicode digits blk_\u0663 blk_4\u0663 end".encode(),  # Python's \d takes them: per-line path
    HDFS + "\u3000unicode leading space blk_13".encode(),
    HDFS + "unicode trailing space blk_14\u3000".encode(),
    HDFS.rstrip(),  # no content
    HDFS + b"   ",
    b"  " + HDFS + b"leading whitespace",
    HDFS.replace(b" 148 ", b"\t148\t") + b"tabs between fields blk_15",
    HDFS.replace(b"148", "\u0661\u0664\u0668".encode()) + b"unicode digits in the pid",
    HDFS.replace(b"081109", "\uff10\uff18\uff11\uff11\uff10\uff19".encode()) + b"unicode digits in the date",
    HDFS.replace(b"081109 203615", b"0811092 03615") + b"date and time cut elsewhere",
    HDFS.replace(b"081109", b"081399") + b"month 13",
    HDFS.replace(b"081109", b"080230") + b"February 30",
    HDFS.replace(b"081109", b"000229") + b"leap day",
    HDFS.replace(b"081109", b"010229") + b"no leap day",
    HDFS.replace(b"081109", b"690101") + b"1969",
    HDFS.replace(b"203615", b"235960") + b"second 60",
    HDFS.replace(b"203615", b"2036") + b"short time",
    HDFS.replace(b" 148 ", b" pid ") + b"bad pid",
    HDFS.replace(b"PacketResponder:", b"PacketResponder") + b"no colon",
    HDFS.replace(b"dfs.DataNode$PacketResponder:", b":") + b"empty component",
    b"081109 203615 148 INFO",  # too few fields
    b"",
    b"   \r",
    HDFS + b"\xff\xfe not utf-8 blk_16",
    HDFS + b"NUL \x00 byte",
    b"\x01\x02\x03 binary garbage",
    HDFS + b"y" * 3000,  # too long at max_line_bytes=1024
    HDFS + b"last line blk_17",
]


def bundled_hdfs_lines(limit: int) -> tuple[list[bytes], list[str]]:
    """Raw HDFS lines rebuilt from the LogLead sample's event columns, and each line's block (`seq_id`)."""
    events = pq.read_table(DATA / "hdfs_loglead" / "hdfs_events_2percent.parquet").slice(0, limit)
    columns = [pc.cast(events.column(name), pa.string()) for name in ("date", "time", "id", "level", "component")]
    texts = pc.binary_join_element_wise(*columns, pc.cast(events.column("m_message"), pa.string()), " ")
    return [text.encode() for text in texts.to_pylist()], events.column("seq_id").to_pylist()


def write(path: Path, lines: list[bytes], newline: bytes = b"\n") -> Path:
    path.write_bytes(newline.join(lines))
    return path


def per_line(path: Path, shard_bytes: int, **kwargs) -> list[dict]:
    shards = plan_shards([str(path)], shard_bytes)
    return pa.Table.from_pylist([row for s in shards for row in read_shard(s, **kwargs)], schema=RAW_SCHEMA).to_pylist()


def columnar(path: Path, shard_bytes: int, chunk_bytes: int, max_line_bytes: int = 65536, **kwargs) -> pa.Table:
    shards = plan_shards([str(path)], shard_bytes)
    tables = [t for s in shards for t in read_plain_shard(s, max_line_bytes, chunk_bytes=chunk_bytes, **kwargs)]
    assert all(t.schema == RAW_SCHEMA for t in tables)
    return pa.concat_tables(tables)


def assert_same_parse(raw: pa.Table, fmt: str) -> None:
    fast, slow = parse_batch(raw, fmt), parse_batch_per_line(raw, fmt)
    assert fast.schema == slow.schema
    assert fast.to_pylist() == slow.to_pylist()


@pytest.mark.parametrize(("shard_bytes", "chunk_bytes"), [(1 << 20, 1 << 22), (16384, 4096), (2048, 300)])
def test_bundled_bgl_reads_and_parses_as_line_by_line(shard_bytes: int, chunk_bytes: int):
    path = DATA / "bgl" / "BGL_2k.log"
    raw = columnar(path, shard_bytes, chunk_bytes)
    assert raw.to_pylist() == per_line(path, shard_bytes)
    assert_same_parse(raw, "bgl")
    assert parse_batch(raw, "bgl").column("kind").to_pylist() == [""] * 2000


@pytest.mark.parametrize("invalid_utf8", ["dead_letter", "replace"])
@pytest.mark.parametrize(("shard_bytes", "chunk_bytes"), [(1 << 20, 1 << 22), (1024, 500), (1024, 64)])
def test_good_and_bad_bgl_lines_read_and_parse_as_line_by_line(tmp_path, invalid_utf8, shard_bytes, chunk_bytes):
    for newline in (b"\n", b"\r\n"):
        path = write(tmp_path / "mixed.log", BAD_BGL * 3, newline)
        options = {"max_line_bytes": 1024, "invalid_utf8": invalid_utf8}
        raw = columnar(path, shard_bytes, chunk_bytes, **options)
        expected = per_line(path, shard_bytes, **options)
        assert raw.to_pylist() == expected
        kinds = {row["kind"] for row in expected}
        assert {"line too long", "control byte", "NUL byte"} <= kinds
        assert ("invalid UTF-8" in kinds) == (invalid_utf8 == "dead_letter")
        assert_same_parse(raw, "bgl")
        parsed = parse_batch(raw, "bgl").to_pylist()
        assert 10 < sum(not row["kind"] for row in parsed) < len(parsed) - 10


def test_files_with_and_without_a_final_newline_and_empty_files(tmp_path):
    for data in (b"", b"\n", b"\n\n", b"a", b"a\n", b"a\nb", b"\r\n\r\n", GOOD + b"\n" + GOOD):
        path = tmp_path / "edge.log"
        path.write_bytes(data)
        assert columnar(path, 1024, 1024).to_pylist() == per_line(path, 1024), data


def test_thunderbird_and_spirit_parse_as_line_by_line(tmp_path):
    path = write(tmp_path / "tb.log", BAD_SYSLOG * 2)
    raw = columnar(path, 1 << 20, 1 << 20)
    for fmt in ("thunderbird", "spirit"):
        assert_same_parse(raw, fmt)
        rows = parse_batch(raw, fmt).to_pylist()
        assert rows[0]["component"] == "crond" and rows[0]["content"] == "(root) CMD (run-parts /etc/cron.hourly)"
        assert rows[3]["component"] is None and rows[3]["content"] == "no tag here"


def test_bgl_lines_parse_alike_in_another_format():
    raw = pa.table({"source": ["f"] * 3, "offset": [0, 1, 2], "text": [GOOD.decode(), "", "x y"]})
    for fmt in ("bgl", "thunderbird", "hdfs"):
        assert_same_parse(raw, fmt)


def test_splice_restores_the_original_row_order():
    fast = pa.table({"x": [0, 2, 3]})
    slow = pa.table({"x": [1, 4]})
    is_fast = np.array([True, False, True, True, False])
    assert splice(fast, is_fast, slow).column("x").to_pylist() == [0, 1, 2, 3, 4]


def test_bundled_hdfs_parses_as_line_by_line(tmp_path):
    lines, blocks = bundled_hdfs_lines(20000)
    raw = columnar(write(tmp_path / "hdfs.log", lines), 1 << 20, 1 << 20)
    fits, _ = hdfs_columns(raw.column("text").combine_chunks())
    assert fits.all()  # every bundled line takes the columnar path
    assert_same_parse(raw, "hdfs")
    parsed = parse_batch(raw, "hdfs")
    assert parsed.column("block_ids").to_pylist() == [[block] for block in blocks]
    assert parsed.column("timestamp")[0].as_py() == 1226262930.0  # 2008-11-09 20:35:30 UTC


@pytest.mark.parametrize("invalid_utf8", ["dead_letter", "replace"])
@pytest.mark.parametrize(("shard_bytes", "chunk_bytes"), [(1 << 20, 1 << 22), (1024, 300)])
def test_good_and_bad_hdfs_lines_parse_as_line_by_line(tmp_path, invalid_utf8, shard_bytes, chunk_bytes):
    for newline in (b"\n", b"\r\n"):
        path = write(tmp_path / "mixed.log", BAD_HDFS * 3, newline)
        raw = columnar(path, shard_bytes, chunk_bytes, max_line_bytes=1024, invalid_utf8=invalid_utf8)
        assert_same_parse(raw, "hdfs")
        rows = parse_batch(raw, "hdfs").to_pylist()
        assert (
            rows[3]["block_ids"] == ["blk_1", "blk_-2", "blk_3"]
            and rows[3]["component"] == "dfs.DataNode$PacketResponder"
        )
        assert rows[5]["block_ids"] == ["blk_4", "blk_55"] and rows[1]["block_ids"] == []
        assert 15 < sum(not row["kind"] for row in rows) < len(rows) - 15


def test_hdfs_columnar_path_takes_block_id_lists_and_leaves_unicode_digits():
    texts = pa.array([line.decode("utf-8", "replace") for line in BAD_HDFS])
    fits, columns = hdfs_columns(texts)
    taken = dict(zip(np.flatnonzero(fits).tolist(), columns["block_ids"].to_pylist(), strict=True))
    assert taken[3] == ["blk_1", "blk_-2", "blk_3"] and taken[4] == ["blk_7"] and taken[6] == ["blk_-1", "blk_2"]
    assert 11 not in taken  # non-ASCII content naming `blk_`: Python's \d also takes Unicode digits
    assert taken[10] == [] and taken[9] == ["blk_11"]  # Unicode or a tab inside printable-bounded content is fine
    assert 23 in taken and 24 not in taken  # a leap day that exists, one that does not


def test_hdfs_time_stamps_equal_the_per_line_ones_on_every_date():
    stamps = [f"{yy:02d}0101 000000" for yy in range(100)]
    stamps += [
        f"{yy}{mm:02d}{dd:02d} 235959"
        for yy in ("00", "01", "04", "68", "69", "99")
        for mm in range(14)
        for dd in range(33)
    ]
    stamps += [f"081109 {hh:02d}{mi:02d}{ss:02d}" for hh in (0, 23, 24) for mi in (0, 59, 60) for ss in (0, 59, 60, 61)]
    texts = [f"{stamp} 1 INFO c: x" for stamp in stamps]
    raw = pa.table({"source": ["f"] * len(texts), "offset": list(range(len(texts))), "text": texts})
    assert_same_parse(raw, "hdfs")
    kinds = parse_batch(raw, "hdfs").column("kind").to_pylist()
    assert 1500 < kinds.count("") < len(kinds) and set(kinds) == {"", "hdfs: bad date/time"}


def gzip_columnar(path: Path, read_bytes: int, max_line_bytes: int = 1024, **kwargs) -> list[dict]:
    shard = {"source": str(path), "start": 0, "end": -1}
    tables = list(read_gzip_shard(shard, max_line_bytes, read_bytes=read_bytes, **kwargs))
    assert all(t.schema == RAW_SCHEMA for t in tables)
    return pa.concat_tables(tables).to_pylist()


def gzip_per_line(path: Path, max_line_bytes: int = 1024, **kwargs) -> list[dict]:
    rows = read_shard({"source": str(path), "start": 0, "end": -1}, max_line_bytes, **kwargs)
    return pa.Table.from_pylist(list(rows), schema=RAW_SCHEMA).to_pylist()


@pytest.mark.parametrize("read_bytes", [64, 1000, 1 << 18])
@pytest.mark.parametrize("invalid_utf8", ["dead_letter", "replace"])
def test_gzip_reads_in_chunks_as_line_by_line(tmp_path, read_bytes: int, invalid_utf8: str):
    import gzip

    body = b"\n".join(BAD_BGL * 3)
    cases = {
        "whole.gz": gzip.compress(body),
        "final-newline.gz": gzip.compress(body + b"\n"),
        "members.gz": gzip.compress(body[:5000]) + gzip.compress(body[5000:]),  # `cat a.gz b.gz`
        "padded.gz": gzip.compress(body) + b"\0" * 20,  # zero padding after a member, as tape archives leave
        "empty.gz": gzip.compress(b""),
        "zero-bytes.gz": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        got = gzip_columnar(path, read_bytes, invalid_utf8=invalid_utf8)
        assert got == gzip_per_line(path, invalid_utf8=invalid_utf8), name
        assert_same_parse(pa.Table.from_pylist(got, schema=RAW_SCHEMA), "bgl")


def test_a_cut_or_corrupt_gzip_keeps_every_whole_line_before_the_break(tmp_path):
    import gzip
    import zlib

    body = b"".join(GOOD + b" event %d\n" % i for i in range(4000))
    packed = gzip.compress(body)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    readable = zlib.decompressobj(31).decompress(cut.read_bytes())  # all that any reader can get back
    rows = gzip_columnar(cut, 4096)
    whole = readable[: readable.rindex(b"\n") + 1]
    assert [row["kind"] for row in rows] == [""] * whole.count(b"\n") + ["truncated gzip"]
    assert rows[-1]["offset"] == len(whole) and "nothing after uncompressed byte" in rows[-1]["error"]
    assert rows[-2]["text"].encode() + b"\n" == whole[whole.rindex(b"\n", 0, len(whole) - 1) + 1 :]
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(packed[:2000] + bytes(200) + packed[2200:])
    rows = gzip_columnar(corrupt, 4096)
    assert rows[-1]["kind"] == "corrupt gzip"  # deflate may decode garbage before a check fails, as gzip does
    assert [row["text"].encode() for row in rows[:100]] == body.split(b"\n")[:100]
    assert gzip_per_line(corrupt)[-1]["kind"] == "corrupt gzip"  # where garbage stops differs by read size
