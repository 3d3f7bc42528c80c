"""Parse one raw log line of a known format into a flat record; adding a format is adding one function."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from contract.log_formats import LABEL_FIRST_FORMATS, REGEX_FORMAT, TEMPLATES_FORMAT
from pipelines.reading.malformed_line import MalformedLine
from pipelines.reading.regex_format import RegexFormat, compile_regex_format

RECORD_KEYS = ("label", "timestamp", "node", "level", "component", "content", "block_ids")

_BGL_DATE = re.compile(r"\d{4}\.\d{2}\.\d{2}")
_BGL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}\.\d{6}")
_CLOCK = re.compile(r"\d{2}:\d{2}:\d{2}")
_MONTHS = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
# `COMPONENT[PID]: CONTENT` or `COMPONENT: CONTENT`; the component never contains whitespace.
_SYSLOG_TAG = re.compile(r"(?P<component>[^\s:]+?)(?:\[[^\]\s]*\])?:(?:\s+|$)(?P<content>.*)", re.S)
MISSING_REGEX = "format regex needs its line regex: set data.regex (data.regex.line and its label rule)"
_HDFS_STAMP = re.compile(r"\d{12}")
_HDFS_BLOCK = re.compile(r"blk_-?\d+")


def _record(
    label: str | None,
    timestamp: float | None,
    node: str | None,
    level: str | None,
    component: str | None,
    content: str,
    block_ids: list[str] | None = None,
) -> dict:
    return {
        "label": label,
        "timestamp": timestamp,
        "node": node,
        "level": level,
        "component": component,
        "content": content,
        "block_ids": block_ids or [],
    }


def _fields(text: str, count: int, fmt: str) -> list[str]:
    """Split off `count` header fields plus the rest (content), or fail naming how many were found."""
    fields = text.split(None, count)
    if len(fields) < count:
        raise MalformedLine(
            f"{fmt}: expected at least {count} header fields, found {len(fields)}", f"{fmt}: too few header fields"
        )
    if len(fields) == count:
        fields.append("")
    return fields


def _is_number(token: str) -> bool:
    # ASCII only: str.isdigit() also accepts "²", which int() then rejects.
    return token.isascii() and token.isdigit()


def _unix_seconds(token: str, fmt: str) -> float:
    if not _is_number(token):
        raise MalformedLine(f"{fmt}: unix timestamp is not a number: {token[:40]!r}", f"{fmt}: bad unix timestamp")
    return float(token)


def _check(pattern: re.Pattern[str], token: str, what: str, fmt: str) -> None:
    if not pattern.fullmatch(token):
        raise MalformedLine(f"{fmt}: bad {what}: {token[:40]!r}", f"{fmt}: bad {what}")


def parse_bgl(text: str) -> dict:
    """`LABEL UNIXTS YYYY.MM.DD NODE YYYY-MM-DD-HH.MM.SS.ffffff NODE TYPE COMPONENT LEVEL CONTENT`."""
    label, ts, date, node, stamp, _node_again, _type, component, level, content = _fields(text, 9, "bgl")
    timestamp = _unix_seconds(ts, "bgl")
    _check(_BGL_DATE, date, "date", "bgl")
    _check(_BGL_TIME, stamp, "time stamp", "bgl")
    return _record(label, timestamp, node, level, component, content.rstrip())


def _parse_syslog_alert(text: str, fmt: str) -> dict:
    """Thunderbird/Spirit: strict fixed header, lenient `COMPONENT[PID]: CONTENT` tail (it is free syslog text)."""
    label, ts, date, node, month, day, clock, _location, rest = _fields(text, 8, fmt)
    timestamp = _unix_seconds(ts, fmt)
    _check(_BGL_DATE, date, "date", fmt)
    if month not in _MONTHS:
        raise MalformedLine(f"{fmt}: bad month: {month[:40]!r}", f"{fmt}: bad month")
    if not (_is_number(day) and 1 <= int(day) <= 31):
        raise MalformedLine(f"{fmt}: bad day of month: {day[:40]!r}", f"{fmt}: bad day of month")
    _check(_CLOCK, clock, "clock time", fmt)
    component, content = None, rest.rstrip()
    tag = _SYSLOG_TAG.fullmatch(content)
    if tag:
        component = tag.group("component")
        content = tag.group("content")
    return _record(label, timestamp, node, None, component, content)


def parse_thunderbird(text: str) -> dict:
    """`LABEL UNIXTS YYYY.MM.DD USER MONTH DAY HH:MM:SS LOCATION COMPONENT[PID]: CONTENT`."""
    return _parse_syslog_alert(text, "thunderbird")


def parse_spirit(text: str) -> dict:
    """Same layout as Thunderbird."""
    return _parse_syslog_alert(text, "spirit")


def parse_hdfs(text: str) -> dict:
    """`YYMMDD HHMMSS PID LEVEL COMPONENT: CONTENT`; no per-line label (labels are per block, in a CSV)."""
    date, clock, pid, level, component, content = _fields(text, 5, "hdfs")
    try:
        if not _HDFS_STAMP.fullmatch(date + clock):  # strptime alone would read "2036" as 20:03:06
            raise ValueError
        stamp = datetime.strptime(date + clock, "%y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise MalformedLine(f"hdfs: bad date/time: {date[:20]!r} {clock[:20]!r}", "hdfs: bad date/time") from None
    if not _is_number(pid):
        raise MalformedLine(f"hdfs: pid is not a number: {pid[:40]!r}", "hdfs: bad pid")
    if not component.endswith(":"):
        raise MalformedLine(f"hdfs: component must end with ':': {component[:40]!r}", "hdfs: bad component")
    content = content.rstrip()
    # One line can mention several blocks (replication); keep first-seen order, no duplicates.
    block_ids = list(dict.fromkeys(_HDFS_BLOCK.findall(content)))
    return _record(None, stamp.timestamp(), None, level, component[:-1], content, block_ids)


def parse_template(text: str) -> dict:
    """A template or bare log message (LogPrompt's template CSVs, live template lines): all of it is content."""
    return _record(None, None, None, None, None, text.strip())


# A parser per format of `contract.log_formats.LOG_FORMATS` but regex, whose parser is built from its settings.
FORMATS: dict[str, Callable[[str], dict]] = {
    "bgl": parse_bgl,
    "thunderbird": parse_thunderbird,
    "spirit": parse_spirit,
    "hdfs": parse_hdfs,
    "loglead_hdfs": parse_hdfs,  # LogLead's events come from HDFS lines: live lines are raw HDFS lines
    TEMPLATES_FORMAT: parse_template,
}


def line_parser(fmt: str, regex: RegexFormat | None = None) -> Callable[[str], dict]:
    """The parser of format `fmt` (the generic `regex` format needs its settings): text in, record out."""
    if fmt == REGEX_FORMAT:
        if regex is None:
            raise ValueError(MISSING_REGEX)
        parser = compile_regex_format(regex)
    else:
        parser = FORMATS.get(fmt)
    if parser is None:
        raise ValueError(f"unknown log format {fmt!r}; known: {sorted(FORMATS)} and regex")
    label_first = fmt in LABEL_FIRST_FORMATS

    def parse(text: str) -> dict:
        text = text.rstrip("\r\n")
        if not text.strip():
            raise MalformedLine("blank line")
        if label_first and _is_number(text.split(None, 1)[0]):
            return parser("? " + text) | {"label": None}
        return parser(text)

    return parse


def parse_line(text: str, fmt: str, regex: RegexFormat | None = None) -> dict:
    """Parse one line (line ending stripped) of format `fmt`; raise MalformedLine with a reason if it does not fit."""
    return line_parser(fmt, regex)(text)
