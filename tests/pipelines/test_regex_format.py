"""The generic format: a header regex with named groups and a label rule; config errors name the field."""

from __future__ import annotations

import pytest

from cluster.config import ConfigError, parse_config
from pipelines.config import DataConfig, RegexConfig
from pipelines.reading.log_formats import MalformedLine, parse_line
from pipelines.reading.regex_format import ANOMALY_LABEL

APP = r"(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?P<level>[A-Z]+) \[(?P<component>[^\]]+)\] (?P<content>.*)"
LABELLED = r"(?P<label>\S+) (?P<timestamp>\d+) (?P<node>\S+) (?P<content>.*)"


def spec(**fields):
    return RegexConfig(**fields).to_format()


def test_named_groups_fill_the_record_and_the_anomaly_rule_labels_lines():
    fmt = spec(line=APP, timestamp_format="%Y-%m-%d %H:%M:%S", anomaly=r"\b(ERROR|FATAL)\b")
    record = parse_line("2024-01-02 03:04:05 ERROR [db.pool] connection refused  \r\n", "regex", fmt)
    assert record == {
        "label": ANOMALY_LABEL,
        "timestamp": 1704164645.0,
        "node": None,
        "level": "ERROR",
        "component": "db.pool",
        "content": "connection refused",
        "block_ids": [],
    }
    assert parse_line("2024-01-02 03:04:06 INFO [web] GET / 200", "regex", fmt)["label"] == "-"


def test_a_label_group_with_normal_values_and_unix_time():
    fmt = spec(line=LABELLED, timestamp_format="unix", normal_labels=["-", "OK"])
    assert parse_line("OK 1700000000 n1 all good", "regex", fmt)["label"] == "-"
    alert = parse_line("DISKFAIL 1700000001 n2 sda died", "regex", fmt)
    assert (alert["label"], alert["timestamp"], alert["node"], alert["content"]) == (
        "DISKFAIL",
        1700000001.0,
        "n2",
        "sda died",
    )


def test_without_a_label_rule_lines_carry_no_label():
    assert parse_line("x anything", "regex", spec(line=r"x (?P<content>.*)"))["label"] is None


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("no header here", "regex: no match", "regex: line does not match data.regex.line: 'no header here'"),
        (
            "2024-13-02 03:04:05 INFO [a] b",
            "regex: bad timestamp",
            "regex: timestamp '2024-13-02 03:04:05' does not fit '%Y-%m-%d %H:%M:%S'",
        ),
        ("   ", "blank line", "blank line"),
    ],
)
def test_lines_that_do_not_fit_are_malformed_with_a_kind(text: str, kind: str, reason: str):
    fmt = spec(line=APP, timestamp_format="%Y-%m-%d %H:%M:%S")
    with pytest.raises(MalformedLine) as info:
        parse_line(text, "regex", fmt)
    assert (info.value.kind, info.value.reason) == (kind, reason)


def test_format_regex_without_settings_is_a_programming_error():
    with pytest.raises(ValueError, match="format regex needs its line regex: set data.regex"):
        parse_line("x", "regex")


def _raw(**data):
    return {"data": {"paths": ["x.log"], **data}, "model": {"path": "m"}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "regex"}, r"data.regex is the line regex of format regex: set both or neither"),
        ({"regex": {"line": "(?P<content>.*)"}}, r"data.regex is the line regex of format regex: set both or neither"),
        ({"format": "regex", "regex": {"line": "(?P<content>.*"}}, r"data.regex.line: .*not a regular expression"),
        ({"format": "regex", "regex": {"line": "(?P<msg>.*)"}}, r"data.regex.line: .*unknown named groups \['msg'\]"),
        ({"format": "regex", "regex": {"line": "(?P<level>.*)"}}, r"data.regex.line: .*needs a named group `content`"),
        (
            {"format": "regex", "regex": {"line": "(?P<content>.*)", "timestamp_format": "YYYY-MM-DD"}},
            r"data.regex.timestamp_format: .*neither 'unix' nor a strptime format",
        ),
        (
            {"format": "regex", "regex": {"line": "(?P<content>.*)", "timestamp_format": "unix"}},
            r"data.regex: .*timestamp_format: data.regex.line has no `timestamp` group",
        ),
        (
            {"format": "regex", "regex": {"line": "(?P<content>.*)", "anomaly": "(["}},
            r"data.regex.anomaly: .*not a regular expression",
        ),
        (
            {"format": "regex", "regex": {"line": LABELLED, "anomaly": "ERROR"}},
            r"data.regex: .*anomaly: give either a `label` group .* not both",
        ),
        ({"format": "regex", "regex": {"line": APP, "lable": "x"}}, r"data.regex.lable: Extra inputs"),
    ],
)
def test_config_errors_name_the_field(data: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        parse_config(_raw(**data))


def test_a_valid_regex_config():
    cfg = DataConfig(paths=["x"], format="regex", regex={"line": APP, "anomaly": "ERROR"})
    assert cfg.regex.to_format().normal_labels == ("-",)
