"""The generic line format: any text log, one header regex with named groups, and an optional label rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from pipelines.reading.malformed_line import MalformedLine

GROUPS = ("label", "timestamp", "node", "level", "component", "content")
UNIX = "unix"
ANOMALY_LABEL = "anomaly"  # the line label the `anomaly` rule gives a matching line ("-" is normal)


@dataclass(frozen=True)
class RegexFormat:
    """How to read one line: `line` is matched at the line start; its named groups fill the record.

    `timestamp_format`: strptime format of the `timestamp` group, `unix` (seconds), or None (no time).
    Label rule, at most one: a `label` group (values in `normal_labels` are normal, any other is an alert
    category), or `anomaly`, a regex searched in the whole line (a match marks the line anomalous).
    """

    line: str
    timestamp_format: str | None = None
    anomaly: str | None = None
    normal_labels: tuple[str, ...] = ("-",)


def regex_format_from_dict(saved: dict) -> RegexFormat:
    """The RegexFormat that `dataclasses.asdict` wrote (prompt_settings.json keeps a regex run's data.regex)."""
    return RegexFormat(**{**saved, "normal_labels": tuple(saved.get("normal_labels", ("-",)))})


def line_pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a header regex, or None."""
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        return f"not a regular expression: {err}"
    unknown = sorted(set(compiled.groupindex) - set(GROUPS))
    if unknown:
        return f"unknown named groups {unknown}; known: {list(GROUPS)}"
    if "content" not in compiled.groupindex:
        return "needs a named group `content` (the message that drain3 turns into templates)"
    return None


def timestamp_problem(timestamp_format: str) -> str | None:
    """Why `timestamp_format` is unusable, or None (a format without any % directive is a typo)."""
    if timestamp_format != UNIX and "%" not in timestamp_format:
        return f"{timestamp_format!r} is neither {UNIX!r} nor a strptime format (no % directive)"
    return None


def _timestamp(value: str, timestamp_format: str) -> float:
    try:
        if timestamp_format == UNIX:
            return float(value)
        stamp = datetime.strptime(value, timestamp_format)
    except ValueError:
        raise MalformedLine(
            f"regex: timestamp {value[:40]!r} does not fit {timestamp_format!r}", "regex: bad timestamp"
        ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


@lru_cache(maxsize=16)
def compile_regex_format(spec: RegexFormat) -> Callable[[str], dict]:
    """A line parser for `spec` (compiled once per process: Ray tasks call this per batch)."""
    pattern = re.compile(spec.line)
    anomaly = re.compile(spec.anomaly) if spec.anomaly else None
    has_label, has_time = "label" in pattern.groupindex, "timestamp" in pattern.groupindex
    normal = set(spec.normal_labels)

    def parse(text: str) -> dict:
        match = pattern.match(text)
        if match is None:
            raise MalformedLine(f"regex: line does not match data.regex.line: {text[:40]!r}", "regex: no match")
        groups = match.groupdict()
        stamp = groups.get("timestamp") if has_time else None
        if has_label:
            value = (groups["label"] or "").strip()
            label = "-" if not value or value in normal else value
        elif anomaly is not None:
            label = ANOMALY_LABEL if anomaly.search(text) else "-"
        else:
            label = None
        return {
            "label": label,
            "timestamp": _timestamp(stamp, spec.timestamp_format) if stamp and spec.timestamp_format else None,
            "node": groups.get("node"),
            "level": groups.get("level"),
            "component": groups.get("component"),
            "content": (groups["content"] or "").rstrip(),
            "block_ids": [],
        }

    return parse
