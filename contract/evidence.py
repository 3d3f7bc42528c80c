"""Cited evidence: find `L<n> "<quote>"` citations in a rationale and check them against the prompt's lines.

One rule, shared by the grounding reward and `logrl eval`'s faithfulness: a citation names one line (`L7`) or
exactly one rendered group (`L3-L9`, `L1-L3,L7`: the numbers as the prompt prints them), and its quote must be
verbatim message text of that line or group. A range that is not a group the prompt shows names nothing. A citation
carries the anomaly only when it is grounded and a line it names carries it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

# A prompt log line, as pipelines/prompts/render.py renders it:
#   `L7: text`, `L7 HEADER: text`, `L3-L9 (x7) HEADER: text`, `L1-L3,L7 (x4) HEADER: text`.
# The header has no colon, so the first `: ` after the numbers ends it; only the text after it is evidence.
_PROMPT_LINE = re.compile(
    r"^[ \t]*(?P<numbers>L\d+(?:-L\d+)?(?:,L\d+(?:-L\d+)?)*)(?:[ \t]+\(x\d+\))?(?:[ \t]+[^:\n]*?)?:[ \t]+"
    r"(?P<text>.*?)[ \t]*$",
    re.M,
)
_RANGE = re.compile(r"L(\d+)(?:-L(\d+))?")
# A citation in a rationale: `L3 "quote"`, `L3-L9 "quote"`, `L3-L9 (x7) "quote"`, `L1-L3,L7 (x4): "quote"`.
_CITATION = re.compile(
    r"\b(?P<spec>L\d+(?:\s*-\s*L?\d+)?(?:\s*,\s*L\d+(?:\s*-\s*L?\d+)?)*)(?:\s*\(x\d+\))?\s*:?\s*\"(?P<quote>[^\"\n]*)\""
)
_SPEC_PART = re.compile(r"L(\d+)(?:-L?(\d+))?")
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z0-9]{3,}")
# Guards against a prompt or citation like `L1-L999999999` making us enumerate a huge range.
_MAX_RANGE = 10_000


@dataclass(frozen=True)
class Citation:
    """One cited piece of evidence: lines `first..last` of its first range, the whole number list as written
    (normalised: `L3-L9,L12`), and the quoted text."""

    first: int
    last: int
    quote: str
    spec: str = ""

    @property
    def single_line(self) -> bool:
        return "," not in self.spec and "-" not in self.spec


@dataclass(frozen=True)
class PromptGroup:
    """A line of the prompt: the log lines it stands for, its numbers as printed, its message text."""

    numbers: tuple[int, ...]
    spec: str
    text: str


@dataclass(frozen=True)
class PromptIndex:
    """The prompt's groups, and which group shows each line number and each printed number list."""

    groups: tuple[PromptGroup, ...]
    by_line: dict[int, int]
    by_spec: dict[str, int]


def _normalize(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _numbers(spec: str) -> tuple[int, ...] | None:
    """The line numbers of `L3-L9,L12` (None for a reversed or absurd range)."""
    numbers: list[int] = []
    for first_s, last_s in _SPEC_PART.findall(spec):
        first, last = int(first_s), int(last_s or first_s)
        if last < first or last - first > _MAX_RANGE:
            return None
        numbers.extend(range(first, last + 1))
    return tuple(numbers)


def _canonical_spec(spec: str) -> str:
    """`L3 - 9, L12` -> `L3-L9,L12`: the form the prompt prints."""
    parts = []
    for first, last in _SPEC_PART.findall(_WHITESPACE.sub("", spec)):
        parts.append(f"L{first}" if not last else f"L{first}-L{last}")
    return ",".join(parts)


def index_prompt(prompt: str) -> PromptIndex:
    """Every group the prompt shows (headers are not text: quoting `KERNEL` or `INFO` proves nothing)."""
    groups: list[PromptGroup] = []
    by_line: dict[int, int] = {}
    by_spec: dict[str, int] = {}
    for match in _PROMPT_LINE.finditer(prompt):
        numbers = _numbers(match.group("numbers"))
        if numbers is None:
            continue
        index = len(groups)
        groups.append(PromptGroup(numbers, match.group("numbers"), _normalize(match.group("text"))))
        by_spec.setdefault(match.group("numbers"), index)
        for number in numbers:
            by_line.setdefault(number, index)
    return PromptIndex(tuple(groups), by_line, by_spec)


def index_prompt_lines(prompt: str) -> dict[int, list[str]]:
    """Line number -> message texts shown for it in the prompt (every number of a collapsed group maps to it)."""
    index = index_prompt(prompt)
    return {number: [index.groups[g].text] for number, g in index.by_line.items()}


def count_prompt_groups(prompt: str) -> int:
    """How many log lines (collapsed template groups) the prompt shows."""
    return sum(1 for _ in _PROMPT_LINE.finditer(prompt))


def extract_citations(rationale: str) -> list[Citation]:
    """All citations in a rationale, in order of appearance (duplicates kept)."""
    citations = []
    for match in _CITATION.finditer(rationale):
        spec = _canonical_spec(match.group("spec"))
        first_s, last_s = _SPEC_PART.match(spec).groups()
        citations.append(Citation(int(first_s), int(last_s or first_s), _normalize(match.group("quote")), spec))
    return citations


def is_meaningful_quote(quote: str, min_chars: int = 12, min_words: int = 2, whole: str | None = None) -> bool:
    """A quote long enough to be evidence: `min_chars` characters, or `min_words` words of 3+ letters/digits, or the
    whole of a short line's text (`whole`) when it has a word: all the evidence that line holds."""
    if len(quote) >= min_chars or len(_WORD.findall(quote)) >= min_words:
        return True
    return whole is not None and quote == whole and bool(_WORD.search(quote))


def named_group(citation: Citation, index: PromptIndex) -> int | None:
    """The group a citation names: the one showing its single line, or the one printed with exactly its numbers."""
    if citation.single_line or not citation.spec:
        return index.by_line.get(citation.first) if citation.first == citation.last else None
    return index.by_spec.get(citation.spec)


def named_lines(citation: Citation, index: PromptIndex) -> tuple[int, ...]:
    """The log lines a citation names: its one line, or every line of the group it names exactly."""
    group = named_group(citation, index)
    if group is None:
        return ()
    return (citation.first,) if citation.single_line else index.groups[group].numbers


@dataclass(frozen=True)
class CheckedCitation:
    """A citation, the group it names (None: no shown line or group), and how it fares."""

    citation: Citation
    group: int | None
    grounded: bool  # a meaningful quote, verbatim in the message text of the line or group it names
    carries_anomaly: bool  # grounded, and a line it names carries the anomaly


def check_citations(
    rationale: str,
    prompt: str,
    anomaly_lines: Collection[int] = (),
    min_quote_chars: int = 12,
    min_words: int = 2,
) -> list[CheckedCitation]:
    """Every citation of `rationale`, in order of appearance, checked against `prompt` and the anomaly lines."""
    citations = extract_citations(rationale)
    if not citations:
        return []
    index = index_prompt(prompt)
    anomalous = set(anomaly_lines)
    checked = []
    for citation in citations:
        group = named_group(citation, index)
        text = index.groups[group].text if group is not None else ""
        grounded = (
            group is not None
            and citation.quote in text
            and is_meaningful_quote(citation.quote, min_quote_chars, min_words, whole=text)
        )
        carries = grounded and any(number in anomalous for number in named_lines(citation, index))
        checked.append(CheckedCitation(citation, group, grounded, carries))
    return checked


def is_grounded(citation: Citation, prompt: str, min_quote_chars: int = 12, min_words: int = 2) -> bool:
    """Whether one citation is grounded in `prompt` (the rule above)."""
    spec = citation.spec or (f"L{citation.first}" if citation.first == citation.last else "")
    text = f'{spec or f"L{citation.first}-L{citation.last}"} "{citation.quote}"'
    checked = check_citations(text, prompt, (), min_quote_chars, min_words)
    return bool(checked) and checked[0].grounded


def anomaly_groups(prompt: str, anomaly_lines: Collection[int]) -> int:
    """How many groups the prompt shows that hold a line carrying the anomaly."""
    anomalous = set(anomaly_lines)
    return sum(bool(anomalous & set(group.numbers)) for group in index_prompt(prompt).groups)


@dataclass(frozen=True)
class EvidenceCheck:
    """How a rationale's citations fare against its prompt (groups: distinct prompt groups cited)."""

    total: int  # citations found, duplicates included
    grounded: int  # distinct groups cited with a grounded quote
    ungrounded: int  # citations (duplicates included) that are not grounded
    grounded_anomaly: int = 0  # distinct groups cited with a grounded quote on a line that carries the anomaly


def check_evidence(
    rationale: str,
    prompt: str,
    min_quote_chars: int = 12,
    anomaly_lines: Collection[int] = (),
    min_words: int = 2,
) -> EvidenceCheck:
    """Count total citations, distinct grounded groups, ungrounded citations and distinct anomaly groups cited."""
    checked = check_citations(rationale, prompt, anomaly_lines, min_quote_chars, min_words)
    grounded = {c.group for c in checked if c.grounded}
    on_anomaly = {c.group for c in checked if c.carries_anomaly}
    ungrounded = sum(not c.grounded for c in checked)
    return EvidenceCheck(len(checked), len(grounded), ungrounded, len(on_anomaly))
