"""Group parsed lines into labelled sessions (fixed windows or blocks), mark the anomaly lines, split them."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pipelines.templates import UNSEEN_ID

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


def has_alert_label(line: dict) -> bool:
    """Whether a line's own label (line-labelled formats) is an alert category."""
    return line.get("label") not in NORMAL_LABELS


def session_label(lines: Iterable[dict]) -> str:
    """ "anomalous" if any line carries an alert category, else "normal"."""
    return "anomalous" if any(has_alert_label(line) for line in lines) else "normal"


def carries_anomaly(line: dict) -> bool:
    """Whether a line carries its session's anomaly: set by the pipeline, else its own alert label."""
    return bool(line["carries_anomaly"]) if "carries_anomaly" in line else has_alert_label(line)


def anomaly_lines(lines: Sequence[dict]) -> list[int]:
    """1-based numbers of the lines that carry the anomaly."""
    return [number for number, line in enumerate(lines, start=1) if carries_anomaly(line)]


def block_sessions(rows: Iterable[dict], labels: dict[str, str]) -> list[Session]:
    """HDFS: one session per block id, lines in log order, blocks ordered by first appearance.

    A line naming several blocks joins each; lines naming none belong to no session.
    """
    blocks: dict[str, list[dict]] = {}
    for row in rows:
        for block_id in row.get("block_ids") or ():
            blocks.setdefault(block_id, []).append(row)
    return [Session(block_id, lines, labels.get(block_id)) for block_id, lines in blocks.items()]


def order_by_time(sessions: list[Session]) -> list[Session]:
    """Lines of each session by timestamp, sessions by their first timestamp (both stable; no time sorts last)."""

    def stamp(line: dict) -> float:
        return math.inf if line.get("timestamp") is None else line["timestamp"]

    for session in sessions:
        session.lines.sort(key=stamp)
    return sorted(sessions, key=lambda session: stamp(session.lines[0]))


def anomaly_templates(train_sessions: Iterable[Session]) -> dict[int, str]:
    """Templates that occur in some anomalous and in no normal training session: anomaly-indicative (block labels)."""
    anomalous: dict[int, str] = {}
    normal: set[int] = set()
    for session in train_sessions:
        for line in session.lines:
            template_id = line.get("template_id")
            if template_id is None or template_id == UNSEEN_ID:
                continue
            if session.label == "anomalous":
                anomalous.setdefault(template_id, line.get("template") or "")
            elif session.label == "normal":
                normal.add(template_id)
    return {template_id: text for template_id, text in sorted(anomalous.items()) if template_id not in normal}


def mark_anomaly_lines(lines: Iterable[dict], indicative: dict[int, str] | None) -> None:
    """Set each line's `carries_anomaly`: its own alert label, or (block labels) an anomaly-indicative template."""
    for line in lines:
        if indicative is None:
            line["carries_anomaly"] = has_alert_label(line)
        else:
            line["carries_anomaly"] = line.get("template_id") in indicative


def train_count(n_sessions: int, train_fraction: float) -> int:
    """How many of the first sessions train; both sides keep at least one session when there are two or more."""
    if n_sessions < 2:
        return n_sessions
    return min(max(round(n_sessions * train_fraction), 1), n_sessions - 1)


def stratified_train(labels: Sequence[str | None], train_fraction: float, seed: int) -> list[bool]:
    """Per session, whether it trains: a seeded `train_fraction` of each label, both sides kept where possible."""
    rng = random.Random(seed)
    trains = [False] * len(labels)
    for label in sorted({str(label) for label in labels}):
        members = [index for index, other in enumerate(labels) if str(other) == label]
        rng.shuffle(members)
        for index in members[: train_count(len(members), train_fraction)]:
            trains[index] = True
    return trains


def chronological_split(sessions: Sequence[T], train_fraction: float) -> tuple[list[T], list[T]]:
    """Earliest sessions train, later ones test: no future information leaks into training."""
    cut = train_count(len(sessions), train_fraction)
    return list(sessions[:cut]), list(sessions[cut:])
