"""Tabular inputs as line records: LogLead event parquet, LogPrompt template CSVs, per-session label CSVs."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The records every reader produces (the Ray text reader's good rows have exactly these columns).
LINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("offset", pa.int64()),
        ("label", pa.string()),
        ("timestamp", pa.float64()),
        ("node", pa.string()),
        ("level", pa.string()),
        ("component", pa.string()),
        ("content", pa.string()),
        ("block_ids", pa.list_(pa.string())),
    ]
)
LOGLEAD_COLUMNS = ("m_message", "seq_id", "m_timestamp", "level", "component")
LABEL_VERDICTS = {"anomaly": "anomalous", "normal": "normal"}
SESSION_ID_COLUMNS = ("seq_id", "BlockId")
TEMPLATE_COLUMNS = ("log", "label")
TEMPLATE_LINE_LABELS = {"0": "-", "1": "abnormal"}  # "-" is the pipeline's normal line label


def require_file(path: str | Path, field: str) -> Path:
    """The path as a Path, or a FileNotFoundError naming the config field and the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{field}: {path}: no such file")
    return path


def check_loglead_events(path: str | Path, field: str = "data.paths") -> None:
    """Fail early, naming the file and what is wrong, unless it is a LogLead events parquet (schema only read)."""
    path = require_file(path, field)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{field}: {path}: not a parquet file ({err})") from None
    missing = [name for name in LOGLEAD_COLUMNS if name not in schema.names]
    if missing:
        raise ValueError(f"{field}: {path}: LogLead events need columns {list(LOGLEAD_COLUMNS)}; missing {missing}")
    if not pa.types.is_timestamp(schema.field("m_timestamp").type):
        raise ValueError(f"{field}: {path}: m_timestamp must be a timestamp, not {schema.field('m_timestamp').type}")


def loglead_lines(batch: pa.Table, source: str, first_offset: int = -1) -> pa.Table:
    """LogLead event rows -> line records (content=m_message, block_ids=[seq_id]); offset = row index if known."""
    micros = pc.cast(pc.cast(batch.column("m_timestamp"), pa.timestamp("us")), pa.int64())
    n = batch.num_rows
    offsets = range(first_offset, first_offset + n) if first_offset >= 0 else [-1] * n
    columns = {
        "source": pa.array([source] * n, pa.string()),
        "offset": pa.array(offsets, pa.int64()),
        "label": pa.nulls(n, pa.string()),  # block-labelled: no line carries a label
        "timestamp": pc.divide(pc.cast(micros, pa.float64()), 1e6),
        "node": pa.nulls(n, pa.string()),
        "level": pc.cast(batch.column("level"), pa.string()),
        "component": pc.utf8_rtrim(pc.cast(batch.column("component"), pa.string()), characters=":"),
        "content": pc.fill_null(pc.cast(batch.column("m_message"), pa.string()), ""),
        "block_ids": pa.array([[] if seq is None else [seq] for seq in batch.column("seq_id").to_pylist()]),
    }
    return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in LINE_SCHEMA], schema=LINE_SCHEMA)


def read_loglead_table(path: str | Path, field: str = "data.paths") -> pa.Table:
    """A whole LogLead events parquet as line records, without Ray (evaluation of one file)."""
    check_loglead_events(path, field)
    table = pq.read_table(path, columns=list(LOGLEAD_COLUMNS))
    if table.num_rows == 0:
        raise ValueError(f"{field}: {path}: no events")
    return loglead_lines(table, str(path), first_offset=0)


def read_session_labels(path: str | Path, field: str = "data.labels_path") -> dict[str, str]:
    """Per-session labels CSV (`seq_id,Label` or HDFS `BlockId,Label`, Label Normal|Anomaly) -> id -> verdict."""
    path = require_file(path, field)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        id_column = next((name for name in SESSION_ID_COLUMNS if name in header), None)
        if id_column is None or "Label" not in header:
            raise ValueError(f"{field}: {path}: header must be seq_id,Label or BlockId,Label, got {header}")
        labels = {}
        for line_number, row in enumerate(reader, start=2):
            verdict = LABEL_VERDICTS.get((row["Label"] or "").strip().lower())
            if verdict is None:
                raise ValueError(
                    f"{field}: {path}: line {line_number}: Label must be Normal or Anomaly, got {row['Label']!r}"
                )
            session_id = (row[id_column] or "").strip()
            if not session_id:
                raise ValueError(f"{field}: {path}: line {line_number}: empty {id_column}")
            labels[session_id] = verdict
    if not labels:
        raise ValueError(f"{field}: {path}: no labelled sessions")
    return labels


def read_template_records(path: str | Path, field: str = "data.paths") -> list[dict]:
    """LogPrompt template CSV `log,label` (1 = abnormal, 0 = normal) -> one line record per row, in file order."""
    path = require_file(path, field)
    records = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if any(name not in header for name in TEMPLATE_COLUMNS):
            raise ValueError(f"{field}: {path}: header must have columns log,label, got {header}")
        for index, row in enumerate(reader):
            label = TEMPLATE_LINE_LABELS.get((row["label"] or "").strip())
            if label is None:
                raise ValueError(f"{field}: {path}: line {index + 2}: label must be 0 or 1, got {row['label']!r}")
            records.append(
                {
                    "source": str(path),
                    "offset": index,
                    "label": label,
                    "timestamp": None,
                    "node": None,
                    "level": None,
                    "component": None,
                    "content": row["log"] or "",
                    "block_ids": [],
                }
            )
    if not records:
        raise ValueError(f"{field}: {path}: no rows")
    return records
