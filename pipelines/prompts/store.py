"""Prepared prompt rows on disk: a folder of parquet parts per split, read whole, streamed, or lazily by index.

Parts are named so that name order is log order (`part-<shard>.parquet`); each holds row groups of
`ROW_GROUP_ROWS` rows, so a lazy reader holds one row group, never a split. A `.jsonl` file (the old layout, or
rows a user wrote by hand) is read the same way.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 512
ROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("label", pa.string()),
        ("reference", pa.string()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("start_offset", pa.int64()),
        ("n_lines", pa.int64()),
        ("templates", pa.list_(pa.string())),
        ("template_ids", pa.list_(pa.int64())),
        ("anomaly_lines", pa.list_(pa.int64())),
    ]
)


def part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


class PartWriter:
    """Rows of one part file, written a row group at a time; the file appears only when `close` renames it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[dict] = []
        self.count = 0

    def write(self, row: dict) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) == ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, ROW_SCHEMA)
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=ROW_SCHEMA))
        self._rows = []

    def close(self) -> None:
        """Finish the file; a part with no rows is not written (and an old one of that name is removed)."""
        if self._rows:
            self._flush()
        if self._writer is None:
            self.path.unlink(missing_ok=True)
            return
        self._writer.close()
        self._tmp.replace(self.path)  # a retried task overwrites its part whole


def write_rows(directory: str | Path, rows: Iterable[dict]) -> int:
    """Replace a split folder by one part holding `rows`; returns how many."""
    directory = Path(directory)
    for old in part_files(directory):
        old.unlink()
    writer = PartWriter(directory / part_name(0))
    for row in rows:
        writer.write(row)
    writer.close()
    return writer.count


def part_files(path: str | Path) -> list[Path]:
    """The parts of a split folder in log order (none for a missing folder)."""
    path = Path(path)
    return sorted(path.glob("part-*.parquet")) if path.is_dir() else []


def iter_examples(path: str | Path, columns: list[str] | None = None) -> Iterator[dict]:
    """Rows of a split folder (or a JSONL file), a row group at a time."""
    path = Path(path)
    if not path.is_dir():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    yield row if columns is None else {name: row[name] for name in columns}
        return
    for part in part_files(path):
        parquet = pq.ParquetFile(part)
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group, columns=columns).to_pylist()


def load_examples(path: str | Path) -> list[dict]:
    """Every row of a split folder written by `building.dataset` (or a JSONL file), in log order."""
    return list(iter_examples(path))


def count_examples(path: str | Path) -> int:
    path = Path(path)
    if not path.is_dir():
        return sum(1 for _ in iter_examples(path, ["id"]))
    return sum(pq.ParquetFile(part).metadata.num_rows for part in part_files(path))


class PromptTable(Sequence):
    """A split's rows by index, read lazily: labels are held (the sampler needs them), rows come a row group at a
    time from disk and the last `cached_groups` groups stay in memory. What training holds instead of every row."""

    def __init__(self, path: str | Path, cached_groups: int = 8):
        self.path = Path(path)
        self._groups: list[tuple[Path, int]] = []
        sizes = []
        for part in part_files(self.path):
            metadata = pq.ParquetFile(part).metadata
            for group in range(metadata.num_row_groups):
                self._groups.append((part, group))
                sizes.append(metadata.row_group(group).num_rows)
        if not self._groups:
            raise FileNotFoundError(f"{self.path}: no prepared rows (part-*.parquet); run `logrl prepare-data` first")
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        self.labels: list[str] = [row["label"] for row in iter_examples(self.path, ["label"])]
        self._cache: OrderedDict[int, list[dict]] = OrderedDict()
        self._cached_groups = cached_groups

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict()}  # sent to a worker: the path and labels, not cached rows

    def _group(self, group: int) -> list[dict]:
        if group in self._cache:
            self._cache.move_to_end(group)
            return self._cache[group]
        part, index = self._groups[group]
        rows = pq.ParquetFile(part).read_row_group(index).to_pylist()
        self._cache[group] = rows
        if len(self._cache) > self._cached_groups:
            self._cache.popitem(last=False)
        return rows

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        group = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self._group(group)[index - int(self._starts[group])]


def open_examples(path: str | Path) -> Sequence[dict]:
    """What training reads: a lazy `PromptTable` over a split folder (a JSONL file is small: read whole)."""
    return PromptTable(path) if Path(path).is_dir() else load_examples(path)


def row_labels(rows: Sequence[dict]) -> list[str]:
    """Every row's label, without reading the rows of a `PromptTable` (it holds its labels)."""
    return rows.labels if isinstance(rows, PromptTable) else [row["label"] for row in rows]
