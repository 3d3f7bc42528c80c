"""The completion format `<think>…</think><answer>normal|anomalous</answer>`: render and parse, once."""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
SPECIAL_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
VERDICTS = ("normal", "anomalous")

# Whole-completion patterns: exactly one think block and one answer block, nothing else around them.
_THINK_FIRST = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.S)
_ANSWER_FIRST = re.compile(r"\s*<answer>(?P<answer>.*?)</answer>\s*(?:<think>(?P<think>.*?)</think>)?\s*", re.S)


@dataclass(frozen=True)
class ParsedCompletion:
    """What a completion says; `verdict` is None unless the format is exactly right."""

    verdict: str | None
    rationale: str
    well_formed: bool
    answer_first: bool = False


def render_completion(rationale: str, verdict: str, answer_first: bool = False) -> str:
    """Render a completion in the canonical format (teacher data, tests)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    think = f"{THINK_OPEN}{rationale}{THINK_CLOSE}"
    answer = f"{ANSWER_OPEN}{verdict}{ANSWER_CLOSE}"
    return answer + think if answer_first else think + answer


def parse_completion(text: str) -> ParsedCompletion:
    """Parse a model completion strictly: one think block, one answer block, a known verdict.

    A completion that repeats a tag (for example by echoing log text that contains one) is malformed,
    so text copied from the input can never flip the verdict.
    """
    if any(text.count(tag) > 1 for tag in SPECIAL_TAGS):
        return ParsedCompletion(None, "", False)
    for pattern, answer_first in ((_THINK_FIRST, False), (_ANSWER_FIRST, True)):
        match = pattern.fullmatch(text)
        if match:
            answer = match.group("answer").strip().lower()
            rationale = (match.group("think") or "").strip()
            ok = answer in VERDICTS
            return ParsedCompletion(answer if ok else None, rationale, ok, answer_first)
    return ParsedCompletion(None, "", False)


def neutralize_tags(text: str) -> str:
    """Make log text unable to produce the format's special tokens (log text is data, not markup)."""
    for tag in SPECIAL_TAGS:
        text = text.replace(tag, tag.replace("<", "&lt;").replace(">", "&gt;"))
    return text
