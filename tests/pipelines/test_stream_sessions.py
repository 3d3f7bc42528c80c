"""Streaming fixed windows without Ray: line counts, shard cuts on window starts, line windows, the prompt store."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipelines.building.stream_sessions import align_shards, count_gzip_lines, count_lines
from pipelines.prompts.store import PartWriter, PromptTable, load_examples, open_examples, part_name, row_labels
from pipelines.reading.read_logs import plan_shards, read_shard
from pipelines.sessions.grouping import line_windows


def _lines_of(shard: dict) -> list[dict]:
    return list(read_shard(shard))


@pytest.mark.parametrize(
    "data",
    [b"a\nb\nc\n", b"a\nb\nc", b"a\r\nb\r\n", b"", b"\n\n\n", b"x" * 5000 + b"\nshort\n", b"no newline at all"],
)
def test_line_counts_match_what_the_reader_yields(tmp_path: Path, data: bytes):
    path = tmp_path / "x.log"
    path.write_bytes(data)
    shards = plan_shards([str(path)], 1024)
    read = [row for shard in shards for row in _lines_of(shard) if row["kind"] != "empty file"]
    assert sum(count_lines(shard) for shard in shards) == len(read)
    packed = tmp_path / "x.log.gz"
    packed.write_bytes(gzip.compress(data))
    assert count_lines({"source": str(packed), "start": 0, "end": -1}) == len(read)


def test_gzip_counts_every_member_and_stops_where_a_cut_stream_stops(tmp_path: Path):
    two = tmp_path / "two.gz"
    two.write_bytes(gzip.compress(b"a\nb\n") + gzip.compress(b"c\nd"))  # `cat a.gz b.gz`: one stream to gzip
    assert count_gzip_lines(str(two)) == 4 == sum(1 for _ in gzip.open(two))
    body = b"".join(f"line {i} {'x' * (i % 50)}\n".encode() for i in range(3000))
    packed = gzip.compress(body)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    rows = list(read_shard({"source": str(cut), "start": 0, "end": -1}))
    assert rows[-1]["kind"] == "truncated gzip"
    assert count_gzip_lines(str(cut)) == len(rows) - 1 > 0  # the lines before the break, not the letter


def test_shards_start_on_window_starts_and_cover_each_file_once(tmp_path: Path):
    files = []
    for name, n in (("a.log", 103), ("b.log", 40)):
        path = tmp_path / name
        path.write_bytes(b"".join(f"{name} line {i} {'y' * (i * 7 % 90)}\n".encode() for i in range(n)))
        files.append((str(path), n))
    base = plan_shards([path for path, _ in files], 512)
    assert len(base) > 10
    shards, windows = align_shards(base, [count_lines(shard) for shard in base], 10)

    assert windows == {files[0][0]: 11, files[1][0]: 4}
    assert [shard["index"] for shard in shards] == list(range(len(shards)))
    for path, n in files:
        mine = [shard for shard in shards if shard["source"] == path]
        assert mine[0]["start"] == 0 and mine[-1]["end"] == Path(path).stat().st_size
        assert all(a["end"] == b["start"] for a, b in zip(mine, mine[1:], strict=False))  # contiguous
        assert {shard["window_base"] for shard in mine} == {0 if path == files[0][0] else 11}
        for shard in mine:
            assert shard["first_line"] % 10 == 0
            before = Path(path).read_bytes()[: shard["start"]]
            assert before.count(b"\n") == shard["first_line"]  # the shard's first line is that line of the file
        assert sum(len(_lines_of(shard)) for shard in mine) == n


def test_line_windows_leave_gaps_where_dead_letters_were_and_restart_per_file():
    rows = [{"source": "a", "line": n} for n in (0, 1, 2, 4, 5, 9)] + [{"source": "b", "line": n} for n in (0, 3)]
    windows = [(number, [row["line"] for row in lines]) for number, lines in line_windows(rows, 3)]
    assert windows == [(0, [0, 1, 2]), (1, [4, 5]), (3, [9]), (0, [0]), (1, [3])]
    with pytest.raises(ValueError):
        next(line_windows(rows, 0))


def _row(i: int) -> dict:
    return {
        "id": f"w{i:06d}",
        "prompt": f"prompt {i}",
        "label": "anomalous" if i % 7 == 0 else "normal",
        "reference": "r",
        "split": "train",
        "source": "s",
        "start_offset": i * 10,
        "n_lines": 20,
        "templates": ["t"],
        "template_ids": [1, 2],
        "anomaly_lines": [1] if i % 7 == 0 else [],
    }


def test_prompt_table_reads_rows_lazily_by_index(tmp_path: Path):
    split = tmp_path / "train"
    for part, rows in ((0, range(0, 700)), (1, range(700, 1100))):
        writer = PartWriter(split / part_name(part))
        for i in rows:
            writer.write(_row(i))
        writer.close()
    empty = PartWriter(split / part_name(2))
    empty.close()  # a shard with no rows of this split leaves no file
    assert not (split / part_name(2)).exists()

    table = PromptTable(split, cached_groups=2)
    rows = load_examples(split)
    assert len(table) == len(rows) == 1100 and rows == [_row(i) for i in range(1100)]
    for index in (0, 511, 512, 699, 700, 1099, 3, 1023, -1):
        assert table[index] == rows[index]
    assert table[5:8] == rows[5:8]
    assert row_labels(table) == [row["label"] for row in rows] == table.labels
    assert len(table._cache) <= 2  # never more than the cached row groups
    with pytest.raises(IndexError):
        table[1100]
    with pytest.raises(FileNotFoundError, match="no prepared rows"):
        PromptTable(tmp_path / "missing")


def test_a_jsonl_split_still_reads(tmp_path: Path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(_row(i)) + "\n" for i in range(3)))
    assert open_examples(path) == [_row(i) for i in range(3)] == load_examples(path)
