"""Whole-batch parsing of whitespace-delimited log formats with Arrow kernels (RE2), no Python per line.

A line takes the vectorised path only where the result provably equals the per-line parser's: a labelled line
(the first field is not a bare number) whose header fields are printable ASCII separated by single spaces, a unix
timestamp of at most 15 digits (exact as a float64), and content that starts and ends with printable ASCII. HDFS
lines instead need ASCII digits in a date and time that exist (they read back as written). Every other line (blank,
malformed, tabs or Unicode whitespace or digits in the header, ...) is left to the per-line parser, which owns
every dead-letter reason.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_TRAILING = " \t\x0b\x0c\r"  # what str.rstrip() strips from a decoded text line, ASCII only
_FIELD = r"[!-~]+ "  # printable ASCII, no space: a whole str.split() token, then one space
_LABEL = r"^[!-~]*[!-/:-~][!-~]* "  # not all digits: an all-digit first field is an unlabelled (live) line
_TS = r"[0-9]{1,15} "
_DATE = r"[0-9]{4}\.[0-9]{2}\.[0-9]{2} "
# Content as `rest.rstrip()` leaves it, starting and ending with printable ASCII: no Unicode whitespace (which
# Python strips) can sit at either end, and split_pattern's single-space cut equals str.split()'s.
_CONTENT = r"[!-~]+(?: (?:[!-~](?:.*[!-~])?)?)?[ \t\x0b\x0c\r]*$"

_BGL = (
    rf"{_LABEL}{_TS}{_DATE}{_FIELD}[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}-[0-9]{{2}}\.[0-9]{{2}}\.[0-9]{{2}}\.[0-9]{{6}} "
    rf"{_FIELD}{_FIELD}{_FIELD}{_CONTENT}"
)
_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
_DAY = r"(?:0*[1-9]|0*[12][0-9]|0*3[01]) "  # 1..31 as int() reads ASCII digits, leading zeros included
_SYSLOG = rf"{_LABEL}{_TS}{_DATE}{_FIELD}{_MONTH}{_DAY}[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}} {_CONTENT}"
# The per-line `COMPONENT[PID]: CONTENT` rule with Python's ASCII \s spelled out; used on ASCII content only.
_S = r"[ \t\n\r\x0b\x0c\x1c-\x1f]"
_NOT_S = r"[^ \t\n\r\x0b\x0c\x1c-\x1f"
_SYSLOG_TAG = rf"(?s)^(?P<component>{_NOT_S}:]+?)(?:\[{_NOT_S}\]]*\])?:(?:{_S}+|$)(?P<content>.*)$"

# HDFS: `YYMMDD HHMMSS PID LEVEL COMPONENT: CONTENT`, each field as `log_formats.parse_hdfs` accepts it.
_HDFS = rf"^[0-9]{{6}} [0-9]{{6}} [0-9]+ {_FIELD}[!-~]*: {_CONTENT}"
_HDFS_STAMP = "%y%m%d%H%M%S"  # Arrow's %y pivots at 69 like Python's: 69..99 are 19xx
# Each block id followed by a space, the text between and after them dropped: RE2's leftmost-first matching with
# a lazy prefix finds what `re.findall(r"blk_-?\d+")` finds, on ASCII text.
_BLOCK_IDS = r"(?s).*?(blk_-?[0-9]+)|.+"
_BLOCK_ID = r"(?P<id>blk_-?[0-9]+)"

Columns = dict[str, pa.Array]


def _fields(texts: pa.Array, pattern: str, n_header: int) -> tuple[np.ndarray, list[pa.Array]]:
    """Which texts fit `pattern`, and for those, their header fields plus the rstripped content."""
    ok = pc.match_substring_regex(texts, pattern)
    fits = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
    padded = pc.binary_join_element_wise(texts.filter(ok), "", " ")  # a line of header fields only gets content ""
    parts = pc.split_pattern(padded, " ", max_splits=n_header)
    fields = [pc.list_element(parts, i) for i in range(n_header)]
    return fits, [*fields, pc.utf8_rtrim(pc.list_element(parts, n_header), characters=_TRAILING)]


def _no_block_ids(n: int) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()))


def bgl_columns(texts: pa.Array) -> tuple[np.ndarray, Columns]:
    """`LABEL UNIXTS DATE NODE TIME NODE TYPE COMPONENT LEVEL CONTENT`, as `log_formats.parse_bgl` reads it."""
    fits, (label, ts, _, node, _, _, _, component, level, content) = _fields(texts, _BGL, 9)
    return fits, {
        "label": label,
        "timestamp": pc.cast(ts, pa.float64()),
        "node": node,
        "level": level,
        "component": component,
        "content": content,
        "block_ids": _no_block_ids(len(content)),
    }


def syslog_columns(texts: pa.Array) -> tuple[np.ndarray, Columns]:
    """Thunderbird and Spirit: strict header, then the lenient component tag (ASCII content only: Python's \\s is
    Unicode, so other content goes the per-line way)."""
    fits, (label, ts, _, node, _, _, _, _, rest) = _fields(texts, _SYSLOG, 8)
    ascii_rest = np.asarray(pc.string_is_ascii(rest).to_numpy(zero_copy_only=False), dtype=bool)
    if not ascii_rest.all():
        fits[np.flatnonzero(fits)[~ascii_rest]] = False
        keep = pa.array(ascii_rest)
        label, ts, node, rest = (column.filter(keep) for column in (label, ts, node, rest))
    tag = pc.extract_regex(rest, _SYSLOG_TAG)
    tagged = tag.is_valid()
    return fits, {
        "label": label,
        "timestamp": pc.cast(ts, pa.float64()),
        "node": node,
        "level": pa.nulls(len(rest), pa.string()),
        "component": pc.if_else(tagged, tag.field("component"), pa.scalar(None, pa.string())),
        "content": pc.if_else(tagged, tag.field("content"), rest),
        "block_ids": _no_block_ids(len(rest)),
    }


def hdfs_columns(texts: pa.Array) -> tuple[np.ndarray, Columns]:
    """`YYMMDD HHMMSS PID LEVEL COMPONENT: CONTENT`, as `log_formats.parse_hdfs` reads it: a UTC time stamp and
    the content's block ids. Dates that do not exist (Feb 30, second 60) and non-ASCII contents naming `blk_`
    (Python's \\d is Unicode) go the per-line way."""
    fits, (date, clock, _, level, component, content) = _fields(texts, _HDFS, 5)
    digits = pc.binary_join_element_wise(date, clock, "")
    stamp = pc.strptime(digits, format=_HDFS_STAMP, unit="s", error_is_null=True)
    exists = pc.fill_null(pc.equal(pc.strftime(stamp, format=_HDFS_STAMP), digits), False)
    plain_ids = pc.or_(pc.string_is_ascii(content), pc.invert(pc.match_substring(content, "blk_")))
    vouched = np.asarray(pc.and_(exists, plain_ids).to_numpy(zero_copy_only=False), dtype=bool)
    if not vouched.all():
        fits[np.flatnonzero(fits)[~vouched]] = False
        keep = pa.array(vouched)
        stamp, level, component, content = (column.filter(keep) for column in (stamp, level, component, content))
    return fits, {
        "label": pa.nulls(len(content), pa.string()),
        "timestamp": pc.cast(pc.cast(stamp, pa.int64()), pa.float64()),
        "node": pa.nulls(len(content), pa.string()),
        "level": level,
        "component": pc.utf8_slice_codeunits(component, 0, -1),
        "content": content,
        "block_ids": _block_ids(content),
    }


def _block_ids(contents: pa.Array) -> pa.Array:
    """Each content's block ids in first-seen order without repeats, as `dict.fromkeys(findall(...))` gives them.

    One regex extraction serves the contents with at most one `blk_` (nearly all); the rest go the slower way.
    """
    several = np.asarray(pc.greater(pc.count_substring(contents, "blk_"), 1).to_numpy(zero_copy_only=False), bool)
    first = pc.extract_regex(contents, _BLOCK_ID)  # null where there is none (its field is "" there, not null)
    single = np.asarray(first.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & ~several
    ids, rows = first.field("id").filter(pa.array(single)), np.flatnonzero(single)
    if several.any():
        more_ids, more_rows = _all_block_ids(contents.filter(pa.array(several)))
        rows = np.concatenate([rows, np.flatnonzero(several)[more_rows]])
        order = np.argsort(rows, kind="stable")
        ids, rows = pa.concat_arrays([ids, more_ids]).take(pa.array(order)), rows[order]
    offsets = np.zeros(len(contents) + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=len(contents)), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), ids)


def _all_block_ids(contents: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The block ids of contents (first sightings per content, in order) and the index of the content of each."""
    found = pc.split_pattern(pc.replace_substring_regex(contents, _BLOCK_IDS, r"\1 "), " ")
    ids = pc.list_flatten(found)
    rows = pc.list_parent_indices(found).to_numpy().astype(np.int64)
    codes = ids.dictionary_encode().indices.to_numpy().astype(np.int64)  # equal ids, equal codes
    _, first = np.unique(rows * (int(codes.max(initial=0)) + 1) + codes, return_index=True)
    keep = np.zeros(len(ids), dtype=bool)
    keep[first] = True
    keep &= np.asarray(pc.not_equal(ids, "").to_numpy(zero_copy_only=False), dtype=bool)  # the separators' tails
    return ids.filter(pa.array(keep)), rows[keep]


# Format -> parser of a whole text array: which rows it parsed, and their record columns (those rows only).
COLUMNAR_FORMATS: dict[str, Callable[[pa.Array], tuple[np.ndarray, Columns]]] = {
    "bgl": bgl_columns,
    "thunderbird": syslog_columns,
    "spirit": syslog_columns,
    "hdfs": hdfs_columns,
}
