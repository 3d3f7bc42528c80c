"""Cited evidence: find `L<n> "<quote>"` citations in a rationale and check them against the prompt's lines."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

# A prompt log line, as pipelines/prompts.py renders it:
#   `L7: text`, `L7 HEADER: text`, `L3-L9 (x7) HEADER: text`, `L1-L3,L7 (x4) HEADER: text`.
# The header has no colon, so the first `: ` after the numbers ends it; only the text after it is evidence.
_PROMPT_LINE = re.compile(
    r"^[ \t]*(?P<numbers>L\d+(?:-L\d+)?(?:,L\d+(?:-L\d+)?)*)(?:[ \t]+\(x\d+\))?(?:[ \t]+[^:\n]*?)?:[ \t]+"
    r"(?P<text>.*?)[ \t]*$",
    re.M,
)
_RANGE = re.compile(r"L(\d+)(?:-L(\d+))?")
# A citation in a rationale: `L3 "quote"`, also `L3-L9 "quote"`, `L3-L9 (x7) "quote"`, `L1-L3,L7 (x4) "quote"`.
_CITATION = re.compile(r"\bL(\d+)(?:\s*-\s*L?(\d+))?(?:,L\d+(?:-L\d+)?)*(?:\s*\(x\d+\))?\s*:?\s*\"([^\"\n]*)\"")
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z0-9]{3,}")
# Guards against a citation like `L1-L999999999` making us enumerate a huge range.
_MAX_RANGE = 10_000


@dataclass(frozen=True)
class Citation:
    """One cited piece of evidence: lines `first..last` (equal for a single line) and the quoted text."""

    first: int
    last: int
    quote: str


def _normalize(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def index_prompt_lines(prompt: str) -> dict[int, list[str]]:
    """Line number -> message texts shown for it in the prompt (every number of a collapsed group maps to it).

    Headers (component, level) are not part of the text: quoting `KERNEL` or `INFO` proves nothing.
    """
    lines: dict[int, list[str]] = {}
    for match in _PROMPT_LINE.finditer(prompt):
        text = _normalize(match.group("text"))
        for first_s, last_s in _RANGE.findall(match.group("numbers")):
            first = int(first_s)
            last = int(last_s or first)
            if last < first or last - first > _MAX_RANGE:
                continue
            for number in range(first, last + 1):
                lines.setdefault(number, []).append(text)
    return lines


def count_prompt_groups(prompt: str) -> int:
    """How many log lines (collapsed template groups) the prompt shows."""
    return sum(1 for _ in _PROMPT_LINE.finditer(prompt))


def extract_citations(rationale: str) -> list[Citation]:
    """All citations in a rationale, in order of appearance (duplicates kept)."""
    citations = []
    for match in _CITATION.finditer(rationale):
        first = int(match.group(1))
        last = int(match.group(2) or first)
        citations.append(Citation(first, last, _normalize(match.group(3))))
    return citations


def is_meaningful_quote(quote: str, min_chars: int = 12, min_words: int = 2) -> bool:
    """A quote long enough to be evidence: `min_chars` characters, or `min_words` words of 3+ letters/digits."""
    return len(quote) >= min_chars or len(_WORD.findall(quote)) >= min_words


def is_grounded(citation: Citation, lines: dict[int, list[str]], min_quote_chars: int = 12, min_words: int = 2) -> bool:
    """True if the quote is meaningful, every cited line exists, and the quote is verbatim text of the first one."""
    if not is_meaningful_quote(citation.quote, min_quote_chars, min_words):
        return False
    if citation.last < citation.first or citation.last - citation.first > _MAX_RANGE:
        return False
    if any(number not in lines for number in range(citation.first, citation.last + 1)):
        return False
    return any(citation.quote in text for text in lines[citation.first])


def cites_lines(citation: Citation, numbers: Collection[int]) -> bool:
    """True if the citation names at least one of `numbers` (e.g. the lines that carry the anomaly)."""
    return any(
        number in numbers for number in range(citation.first, min(citation.last, citation.first + _MAX_RANGE) + 1)
    )


@dataclass(frozen=True)
class EvidenceCheck:
    """How a rationale's citations fare against its prompt."""

    total: int  # citations found, duplicates included
    grounded: int  # distinct citations that are grounded
    ungrounded: int  # citations (duplicates included) that are not
    grounded_anomaly: int = 0  # distinct grounded citations naming a line that carries the anomaly


def check_citations(
    rationale: str, prompt: str, min_quote_chars: int = 12, min_words: int = 2
) -> list[tuple[Citation, bool]]:
    """Every citation of `rationale` with whether it is grounded in `prompt`, in order of appearance."""
    citations = extract_citations(rationale)
    if not citations:
        return []
    lines = index_prompt_lines(prompt)
    return [(c, is_grounded(c, lines, min_quote_chars, min_words)) for c in citations]


def check_evidence(
    rationale: str,
    prompt: str,
    min_quote_chars: int = 12,
    anomaly_lines: Collection[int] = (),
    min_words: int = 2,
) -> EvidenceCheck:
    """Count total, grounded (distinct), ungrounded and anomaly-naming grounded citations of `rationale`."""
    checked = check_citations(rationale, prompt, min_quote_chars, min_words)
    grounded = {c for c, ok in checked if ok}
    on_anomaly = {c for c in grounded if cites_lines(c, anomaly_lines)}
    ungrounded = sum(not ok for _, ok in checked)
    return EvidenceCheck(len(checked), len(grounded), ungrounded, len(on_anomaly))
