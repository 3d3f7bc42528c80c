"""Line parsers: each format's fields, and malformed lines rejected with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.reading.log_formats import FORMATS, RECORD_KEYS, MalformedLine, parse_line

BGL_NORMAL = (
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 "
    "RAS KERNEL INFO instruction cache parity error corrected\r\n"
)
BGL_ALERT = (
    "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 R30-M0-N9-C:J16-U01 "
    "RAS KERNEL FATAL data TLB error interrupt"
)
TBIRD = "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root"
HDFS = (
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: "
    "PacketResponder 1 for block blk_-3865 terminating blk_7 blk_-3865"
)


def reason(text: str, fmt: str) -> str:
    with pytest.raises(MalformedLine) as info:
        parse_line(text, fmt)
    return info.value.reason


def test_every_format_returns_the_same_keys():
    samples = {
        "bgl": BGL_NORMAL,
        "thunderbird": TBIRD,
        "spirit": TBIRD,
        "hdfs": HDFS,
        "loglead_hdfs": HDFS,
        "templates": "MACHINE CHECK <*> <*> iar 0x00000000",
    }
    assert set(FORMATS) == set(samples)
    for fmt, text in samples.items():
        assert tuple(parse_line(text, fmt)) == RECORD_KEYS


def test_bgl_fields_and_crlf_stripped():
    record = parse_line(BGL_NORMAL, "bgl")
    assert record == {
        "label": "-",
        "timestamp": 1117838570.0,
        "node": "R02-M1-N0-C:J12-U11",
        "level": "INFO",
        "component": "KERNEL",
        "content": "instruction cache parity error corrected",
        "block_ids": [],
    }
    alert = parse_line(BGL_ALERT, "bgl")
    assert (alert["label"], alert["level"], alert["content"]) == ("KERNDTLB", "FATAL", "data TLB error interrupt")


def test_bgl_keeps_empty_content():
    text = "- 1117838570 2005.06.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO"
    assert parse_line(text, "bgl")["content"] == ""


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "blank line"),
        ("  \t\r\n", "blank line"),
        ("- 1117838570 2005.06.03 R02-M1-N0", "bgl: expected at least 9 header fields, found 4"),
        (BGL_NORMAL.replace("1117838570", "11178x8570"), "bgl: unix timestamp is not a number: '11178x8570'"),
        (BGL_NORMAL.replace("1117838570", "1117838570²"), "bgl: unix timestamp is not a number: '1117838570²'"),
        (BGL_NORMAL.replace("2005.06.03", "2005-06-03", 1), "bgl: bad date: '2005-06-03'"),
        (BGL_NORMAL.replace("15.42.50.675872", "15:42:50"), "bgl: bad time stamp: '2005-06-03-15:42:50'"),
    ],
)
def test_bgl_malformed_reasons(text: str, expected: str):
    assert reason(text, "bgl") == expected


@pytest.mark.parametrize("fmt", ["thunderbird", "spirit"])
def test_syslog_alert_formats(fmt: str):
    record = parse_line(TBIRD, fmt)
    assert record["label"] == "-"
    assert record["timestamp"] == 1131566461.0
    assert record["node"] == "dn228"
    assert record["level"] is None
    assert record["component"] == "crond(pam_unix)"
    assert record["content"] == "session closed for user root"


def test_syslog_component_variants_are_lenient():
    head = "VAPI 1131567119 2005.11.09 tbird-sm1 Nov 9 12:11:59 src@tbird-sm1"
    assert parse_line(f"{head} kernel: eth0 link up", "thunderbird")["component"] == "kernel"
    no_tag = parse_line(f"{head} plain message: with colon later", "thunderbird")
    assert (no_tag["component"], no_tag["content"]) == (None, "plain message: with colon later")
    assert parse_line(head, "thunderbird")["content"] == ""
    path_tag = parse_line(f"{head} /usr/sbin/gmetad[1682]: data_thread() got no answer", "spirit")
    assert (path_tag["component"], path_tag["label"]) == ("/usr/sbin/gmetad", "VAPI")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("- 1131566461 2005.11.09 dn228 Nov 9", "thunderbird: expected at least 8 header fields, found 6"),
        (TBIRD.replace("1131566461", "soon"), "thunderbird: unix timestamp is not a number: 'soon'"),
        (TBIRD.replace("Nov", "Novem"), "thunderbird: bad month: 'Novem'"),
        (TBIRD.replace(" 9 ", " 32 "), "thunderbird: bad day of month: '32'"),
        (TBIRD.replace("12:01:01", "12:01"), "thunderbird: bad clock time: '12:01'"),
    ],
)
def test_thunderbird_malformed_reasons(text: str, expected: str):
    assert reason(text, "thunderbird") == expected


def test_hdfs_fields_and_block_ids():
    record = parse_line(HDFS, "hdfs")
    assert record["label"] is None
    assert record["timestamp"] == datetime(2008, 11, 9, 20, 36, 15, tzinfo=UTC).timestamp()
    assert (record["level"], record["component"]) == ("INFO", "dfs.DataNode$PacketResponder")
    assert record["content"].startswith("PacketResponder 1 for block")
    assert record["block_ids"] == ["blk_-3865", "blk_7"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("081109 203615 148 INFO", "hdfs: expected at least 5 header fields, found 4"),
        (HDFS.replace("081109", "081399"), "hdfs: bad date/time: '081399' '203615'"),
        (HDFS.replace("203615", "2036"), "hdfs: bad date/time: '081109' '2036'"),
        (HDFS.replace(" 148 ", " pid "), "hdfs: pid is not a number: 'pid'"),
        (
            HDFS.replace("PacketResponder:", "PacketResponder"),
            "hdfs: component must end with ':': 'dfs.DataNode$PacketResponder'",
        ),
    ],
)
def test_hdfs_malformed_reasons(text: str, expected: str):
    assert reason(text, "hdfs") == expected


def test_unknown_format_is_a_programming_error_not_a_malformed_line():
    with pytest.raises(ValueError, match="unknown log format") as info:
        parse_line(BGL_NORMAL, "syslog")
    assert not isinstance(info.value, MalformedLine)


def test_every_bundled_bgl_line_parses(bgl_raw_lines: list[str]):
    records = [parse_line(text, "bgl") for text in bgl_raw_lines]
    assert len(records) == 2000
    assert sum(record["label"] != "-" for record in records) == 143
    assert not any("\r" in record["content"] for record in records)


def test_unlabelled_live_lines_parse_without_a_label():
    labelled = (
        "KERNDTLB 1118536327 2005.06.11 R30-M0-N9-C:J16-U01 2005-06-11-17.32.07.581048 R30-M0-N9-C:J16-U01 "
        "RAS KERNEL FATAL data TLB error interrupt"
    )
    live = parse_line(labelled.split(" ", 1)[1], "bgl")
    assert live["label"] is None
    assert live["content"] == "data TLB error interrupt" and live["level"] == "FATAL"
    assert parse_line(labelled, "bgl")["label"] == "KERNDTLB"


def test_template_lines_are_all_content():
    record = parse_line("  <*> exited abnormally due to signal: Aborted\r\n", "templates")
    assert record["content"] == "<*> exited abnormally due to signal: Aborted"
    assert (record["label"], record["level"], record["component"]) == (None, None, None)
    assert parse_line(HDFS, "loglead_hdfs") == parse_line(HDFS, "hdfs")
