"""Group parsed lines into labelled sessions (fixed windows or blocks), mark the anomaly lines, split them."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import TypeVar

from pipelines.templates.miner import UNSEEN_ID

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


def line_windows(rows: Iterable[dict], size: int) -> Iterator[tuple[int, list[dict]]]:
    """(window number, rows) of rows numbered by their `line` in one file: window n holds lines n*size to
    (n+1)*size-1, so a line missing from the rows (a dead letter) leaves its window shorter, never shifts the rest.
    Rows come in file order; a new `source` starts its windows afresh (numbers stay per file)."""
    if size < 1:
        raise ValueError("window size must be >= 1")
    for (_, number), window in groupby(rows, key=lambda row: (row["source"], row["line"] // size)):
        yield number, list(window)


def time_windows(rows: Iterable[dict], seconds: int) -> list[tuple[int, list[dict]]]:
    """(window start, rows) of rows grouped by time: a row's window starts at its `timestamp` rounded down to a
    multiple of `seconds`; rows in a window by time, then input order; windows by start; rows without a time join
    none."""
    windows: dict[int, list[dict]] = {}
    for row in rows:
        if row.get("timestamp") is not None:
            windows.setdefault(math.floor(row["timestamp"] / seconds) * seconds, []).append(row)
    return [(start, sorted(windows[start], key=lambda row: row["timestamp"])) for start in sorted(windows)]


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


@dataclass
class TemplateProfile:
    """What block-labelled training sessions say about templates (no line labels to say it instead).

    `indicative`: templates in some anomalous session and in at most `max_normal_share` of normal ones (the
    lines that carry an anomaly). `expected`: templates in at least `expected_share` of normal sessions (a
    session missing one is incomplete: HDFS blocks whose write never finished).
    """

    indicative: dict[int, str]
    expected: dict[int, str]


@dataclass
class TemplateCounts:
    """Per template, its text and how many normal and anomalous training sessions hold it; what a
    `TemplateProfile` is decided from. Counts of disjoint session sets add up (`merge`)."""

    texts: dict[int, str] = field(default_factory=dict)
    in_normal: dict[int, int] = field(default_factory=dict)
    in_anomalous: dict[int, int] = field(default_factory=dict)
    n_normal: int = 0

    def add(self, label: str | None, templates: dict[int, str]) -> None:
        """Count one session by its label and its templates (id -> text, each once)."""
        for template_id, text in templates.items():
            self.texts.setdefault(template_id, text)
        self.n_normal += label == "normal"
        counter = self.in_normal if label == "normal" else self.in_anomalous if label == "anomalous" else {}
        for template_id in templates:
            counter[template_id] = counter.get(template_id, 0) + 1

    def merge(self, other: TemplateCounts) -> None:
        for template_id, text in other.texts.items():
            self.texts.setdefault(template_id, text)
        for mine, theirs in ((self.in_normal, other.in_normal), (self.in_anomalous, other.in_anomalous)):
            for template_id, count in theirs.items():
                mine[template_id] = mine.get(template_id, 0) + count
        self.n_normal += other.n_normal

    def profile(self, max_normal_share: float = 0.01, expected_share: float = 0.99) -> TemplateProfile:
        normal_share = {t: self.in_normal.get(t, 0) / max(self.n_normal, 1) for t in self.texts}
        texts = self.texts
        indicative = {t: texts[t] for t in sorted(self.in_anomalous) if normal_share[t] <= max_normal_share}
        expected = {t: texts[t] for t in sorted(texts) if self.n_normal and normal_share[t] >= expected_share}
        return TemplateProfile(indicative, expected)


def session_templates(lines: Iterable[dict]) -> dict[int, str]:
    """The templates a session's lines were matched to (id -> text, in order of first line), unseen ones left out."""
    templates: dict[int, str] = {}
    for line in lines:
        template_id = line.get("template_id")
        if template_id is not None and template_id != UNSEEN_ID:
            templates.setdefault(template_id, line.get("template") or "")
    return templates


def template_profile(
    train_sessions: Iterable[Session], max_normal_share: float = 0.01, expected_share: float = 0.99
) -> TemplateProfile:
    """Count, per template, the normal and anomalous training sessions it occurs in."""
    counts = TemplateCounts()
    for session in train_sessions:
        counts.add(session.label, session_templates(session.lines))
    return counts.profile(max_normal_share, expected_share)


def anomaly_templates(train_sessions: Iterable[Session], max_normal_share: float = 0.0) -> dict[int, str]:
    """Templates in some anomalous and in at most `max_normal_share` of normal training sessions."""
    return template_profile(train_sessions, max_normal_share).indicative


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
