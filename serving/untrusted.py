"""Untrusted log text: reject invalid code points, normalise invisible characters, escape what goes back out."""

from __future__ import annotations

import re
import unicodedata

# ANSI escape sequences (CSI with parameters, OSC up to BEL/ST, and two-character escapes): terminal control, no text.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Bidi embeddings/overrides/isolates and marks: they reorder how a line reads without changing its bytes.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Zero-width and invisible formatting characters: they split or hide words (and tags) from a reader.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff"
_DROPPED = re.compile(f"[{_BIDI}{_INVISIBLE}]")
# C0/C1 controls, DEL and Unicode line/paragraph separators: one log line stays one prompt line.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def invalid_code_point(text: str) -> str | None:
    """A description of the first code point that is not valid Unicode text (a lone surrogate), or None."""
    for index, char in enumerate(text):
        if 0xD800 <= ord(char) <= 0xDFFF:
            return f"a lone surrogate U+{ord(char):04X} at character {index + 1}"
        if (ord(char) & 0xFFFE) == 0xFFFE or 0xFDD0 <= ord(char) <= 0xFDEF:
            return f"a noncharacter U+{ord(char):04X} at character {index + 1}"
    return None


def normalize_line(text: str) -> str:
    """A raw log line as plain visible text: NFC, ANSI escapes and invisible characters removed, controls as spaces."""
    text = unicodedata.normalize("NFC", _ANSI.sub("", text))
    return _CONTROLS.sub(" ", _DROPPED.sub("", text))


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_UNSAFE_OUT = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}{_INVISIBLE}\ud800-\udfff]")


def escape_for_response(text: str) -> str:
    """Text safe to show a client or terminal: control, bidi and zero-width characters as visible `\\uXXXX` escapes."""
    return _UNSAFE_OUT.sub(_escape_char, text)


def clip(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, ending with `…` when cut."""
    return text if len(text) <= max_chars else text[: max(max_chars - 1, 0)] + "…"
