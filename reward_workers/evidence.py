"""Cited evidence: find `L<n> "<quote>"` citations in a rationale and check them against the prompt's lines."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A prompt log line: `L3 text`, or a collapsed run `L3-L9 (x7) text`, at the start of a prompt line.
_PROMPT_LINE = re.compile(r"^[ \t]*L(\d+)(?:-L(\d+))?(?:[ \t]+\(x\d+\))?[ \t]+(.*?)[ \t]*$", re.M)
# A citation in a rationale: `L3 "quote"`, also `L3-L9 "quote"` and `L3-L9 (x7) "quote"`.
_CITATION = re.compile(r"\bL(\d+)(?:\s*-\s*L?(\d+))?(?:\s*\(x\d+\))?\s*:?\s*\"([^\"\n]*)\"")
_WHITESPACE = re.compile(r"\s+")
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
    """Line number -> texts shown for it in the prompt (a collapsed run maps every number in it)."""
    lines: dict[int, list[str]] = {}
    for match in _PROMPT_LINE.finditer(prompt):
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first or last - first > _MAX_RANGE:
            continue
        text = _normalize(match.group(3))
        for number in range(first, last + 1):
            lines.setdefault(number, []).append(text)
    return lines


def extract_citations(rationale: str) -> list[Citation]:
    """All citations in a rationale, in order of appearance (duplicates kept)."""
    citations = []
    for match in _CITATION.finditer(rationale):
        first = int(match.group(1))
        last = int(match.group(2) or first)
        citations.append(Citation(first, last, _normalize(match.group(3))))
    return citations


def is_grounded(citation: Citation, lines: dict[int, list[str]], min_quote_chars: int = 1) -> bool:
    """True if every cited line exists and the quote is verbatim text of the (first) cited line."""
    if len(citation.quote) < min_quote_chars:
        return False
    if citation.last < citation.first or citation.last - citation.first > _MAX_RANGE:
        return False
    if any(number not in lines for number in range(citation.first, citation.last + 1)):
        return False
    return any(citation.quote in text for text in lines[citation.first])


@dataclass(frozen=True)
class EvidenceCheck:
    """How a rationale's citations fare against its prompt."""

    total: int  # citations found, duplicates included
    grounded: int  # distinct citations that are grounded
    ungrounded: int  # citations (duplicates included) that are not


def check_evidence(rationale: str, prompt: str, min_quote_chars: int = 1) -> EvidenceCheck:
    """Count total, grounded (distinct) and ungrounded citations of `rationale` against `prompt`."""
    citations = extract_citations(rationale)
    if not citations:
        return EvidenceCheck(0, 0, 0)
    lines = index_prompt_lines(prompt)
    verdicts = [is_grounded(c, lines, min_quote_chars) for c in citations]
    distinct_grounded = {c for c, ok in zip(citations, verdicts, strict=True) if ok}
    return EvidenceCheck(len(citations), len(distinct_grounded), verdicts.count(False))
