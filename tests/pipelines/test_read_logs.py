"""Shard planning, shard reading and batch parsing, without Ray (the Ray path is in test_build_dataset)."""

from __future__ import annotations

import gzip
from itertools import pairwise

import pyarrow as pa

from pipelines.reading.read_logs import PARSED_SCHEMA, parse_batch, plan_shards, read_shard

GOOD = "- 1117838570 2005.06.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO line {}"


def write_log(path, n: int, bad_at: set[int] = frozenset()) -> list[str]:
    lines = [f"garbage line {i}" if i in bad_at else GOOD.format(i) + " pad" * (i % 7) for i in range(n)]
    path.write_bytes(("\r\n".join(lines)).encode())  # CRLF, no newline at the end, like the bundled sample
    return lines


def test_shards_are_contiguous_line_aligned_and_cover_every_line(tmp_path):
    path = tmp_path / "a.log"
    lines = write_log(path, 300)
    data = path.read_bytes()
    shards = plan_shards([str(path)], 1000)
    assert len(shards) > 5
    assert shards[0]["start"] == 0 and shards[-1]["end"] == len(data)
    for left, right in pairwise(shards):
        assert left["end"] == right["start"]
        assert data[right["start"] - 1 : right["start"]] == b"\n"
    rows = [row for shard in shards for row in read_shard(shard)]
    assert [row["text"] for row in rows] == lines
    for row in rows:
        assert data[row["offset"] :].startswith(row["text"].encode())


def test_a_line_longer_than_a_shard_stays_whole(tmp_path):
    path = tmp_path / "long.log"
    path.write_bytes(b"short\n" + b"x" * 5000 + b"\nend\n")
    shards = plan_shards([str(path)], 1000)
    rows = [row for shard in shards for row in read_shard(shard)]
    assert [(row["offset"], len(row["text"])) for row in rows] == [(0, 5), (6, 5000), (5007, 3)]


def test_gzip_is_one_shard_with_uncompressed_offsets(tmp_path):
    path = tmp_path / "a.log.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"one\ntwo\n")
    plain = tmp_path / "b.log"
    plain.write_bytes(b"three\n")
    shards = plan_shards([str(path), str(plain)], 1024)
    assert [shard["source"] for shard in shards] == [str(path), str(plain)]
    rows = [row for shard in shards for row in read_shard(shard)]
    assert [(row["offset"], row["text"]) for row in rows] == [(0, "one"), (4, "two"), (0, "three")]


def test_parse_batch_marks_malformed_rows_with_a_reason():
    batch = pa.table({"source": ["f", "f", "f"], "offset": [0, 10, 20], "text": [GOOD.format(1), "", "x y"]})
    out = parse_batch(batch, "bgl")
    assert out.schema == PARSED_SCHEMA
    rows = out.to_pylist()
    assert [row["error"] for row in rows] == ["", "blank line", "bgl: expected at least 9 header fields, found 2"]
    assert rows[0]["content"] == "line 1" and rows[0]["label"] == "-"
    assert rows[2]["text"] == "x y" and rows[2]["offset"] == 20
