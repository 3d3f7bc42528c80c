"""drain3 masking rules: the built-in ones, or a user's YAML file of them (`data.masking_file`)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# (mask name, regex), applied in order: specific ids first, so a node id or block id is not eaten by NUM.
DEFAULT_MASKING: tuple[tuple[str, str], ...] = (
    ("NODE", r"\bR\d\d-M\d(?:-[A-Za-z0-9]+)*(?::J\d\d-U\d\d)?\b"),  # BGL node/card ids: R02-M1-N0-C:J12-U11, R37-M1-N4
    ("BLK", r"blk_-?\d+"),  # HDFS block ids
    ("IP", r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?\b"),  # \b-anchored: ~3x faster than lookarounds
    ("MAC", r"\b[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){3,}\b"),
    ("HEX", r"\b0[xX][0-9a-fA-F]+\b"),
    ("HEX", r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"),  # bare hex words with a digit (addresses, registers)
    ("NUM", r"(?<![A-Za-z0-9_.])[-+]?\d+(?:\.\d+)?(?![A-Za-z0-9_])"),
)
MASK_NAME = re.compile(r"[A-Z][A-Z0-9_]*")  # drain3 writes it as <NAME> in templates


def masking_rules(path: str | Path | None, field: str = "data.masking_file") -> tuple[tuple[str, str], ...]:
    """The (mask name, regex) rules of a masking file, in file order; None gives DEFAULT_MASKING.

    The file is YAML (or JSON): a non-empty list of `{name: NUM, pattern: '...'}` entries, exactly those two keys,
    names of uppercase letters, digits and underscores, patterns that Python's `re` compiles and that do not match
    the empty string (they would mask between every character). Errors name the config field, the file and the
    entry index.
    """
    if path is None:
        return DEFAULT_MASKING
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{field}: {path}: no such file")
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{field}: {path}: not YAML ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{field}: {path}: must be a non-empty list of {{name, pattern}} entries")
    return tuple(_masking_rule(entry, f"{field}: {path}: entry {index}") for index, entry in enumerate(entries))


def _masking_rule(entry: object, where: str) -> tuple[str, str]:
    """One validated (name, pattern) pair of a masking file; `where` prefixes the error."""
    if not isinstance(entry, dict) or set(entry) != {"name", "pattern"}:
        raise ValueError(f"{where}: needs exactly the keys name and pattern, got {entry!r}")
    name, pattern = entry["name"], entry["pattern"]
    if not isinstance(name, str) or not MASK_NAME.fullmatch(name):
        raise ValueError(
            f"{where}: name must be uppercase letters, digits and _ (quote YAML words like NO), got {name!r}"
        )
    if not isinstance(pattern, str):
        raise ValueError(f"{where} ({name}): pattern must be a string, got {pattern!r}")
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{where} ({name}): pattern is not a regular expression: {err}") from None
    if compiled.match(""):
        raise ValueError(f"{where} ({name}): pattern {pattern!r} matches the empty string")
    return name, pattern
