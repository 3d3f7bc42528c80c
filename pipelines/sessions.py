"""Group parsed lines into labelled sessions (fixed windows or HDFS blocks) and split them chronologically."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

NORMAL_LABELS = ("-", None)  # "-" is BGL/Thunderbird/Spirit's normal; None means the format has no line label

T = TypeVar("T")


@dataclass
class Session:
    """Lines in log order and the session's verdict; `label` is None for a block missing from the label file."""

    id: str
    lines: list[dict]
    label: str | None


def fixed_windows(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """Consecutive windows of `size` rows, streaming; the last window may be shorter."""
    if size < 1:
        raise ValueError("window size must be >= 1")
    window: list[dict] = []
    for row in rows:
        window.append(row)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def session_label(lines: Iterable[dict]) -> str:
    """ "anomalous" if any line carries an alert category, else "normal"."""
    return "anomalous" if any(line.get("label") not in NORMAL_LABELS for line in lines) else "normal"


def block_sessions(rows: Iterable[dict], labels: dict[str, str]) -> list[Session]:
    """HDFS: one session per block id, lines in log order, blocks ordered by first appearance.

    A line naming several blocks joins each; lines naming none belong to no session.
    """
    blocks: dict[str, list[dict]] = {}
    for row in rows:
        for block_id in row.get("block_ids") or ():
            blocks.setdefault(block_id, []).append(row)
    return [Session(block_id, lines, labels.get(block_id)) for block_id, lines in blocks.items()]


def train_count(n_sessions: int, train_fraction: float) -> int:
    """How many of the first sessions train; both sides keep at least one session when there are two or more."""
    if n_sessions < 2:
        return n_sessions
    return min(max(round(n_sessions * train_fraction), 1), n_sessions - 1)


def chronological_split(sessions: Sequence[T], train_fraction: float) -> tuple[list[T], list[T]]:
    """Earliest sessions train, later ones test: no future information leaks into training."""
    cut = train_count(len(sessions), train_fraction)
    return list(sessions[:cut]), list(sessions[cut:])
