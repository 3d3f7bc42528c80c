"""The completion format `<think>…</think><answer>normal|anomalous</answer>`: render and parse, once."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
SPECIAL_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
VERDICTS = ("normal", "anomalous")
# How a completion is asked for, as eval and /detect name it: `reason` (the rationale, then the verdict), `fast`
# (answer first: `<answer>` prefilled), `grounded` (reason, decoded under the prompt's evidence grammar).
REASON_MODE, FAST_MODE, GROUNDED_MODE = "reason", "fast", "grounded"
MODES = (REASON_MODE, FAST_MODE, GROUNDED_MODE)

# Whole-completion patterns: exactly one think block and one answer block, nothing else around them.
_THINK_FIRST = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.S)
_ANSWER_FIRST = re.compile(r"\s*<answer>(?P<answer>.*?)</answer>\s*(?:<think>(?P<think>.*?)</think>)?\s*", re.S)
_ANY_TAG = re.compile(r"<\s*/?\s*(?:think|answer)\s*>", re.IGNORECASE)


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


# Line numbers left at the end of a rationale without their quote (the budget cut the citation short).
_UNFINISHED_CITATION = re.compile(
    r"\s*\bL\d+(?:\s*-\s*L?\d+)?(?:\s*,\s*L\d+(?:\s*-\s*L?\d+)?)*(?:\s*\(x\d+\))?\s*[:,-]?\s*$"
)


def budget_forced_prefill(completion: str) -> str | None:
    """Where to ask for the verdict of a reasoning completion its token budget cut before the answer (budget
    forcing): the rationale so far, less a citation cut inside its quote, closed: `<think>…</think><answer>`.

    None when there is nothing to force: the completion already closed its answer, does not open with `<think>`,
    or repeats a tag. The caller continues the prefill as fast mode does (the verdict and `</answer>`).
    """
    text = completion.lstrip()
    if not text.startswith(THINK_OPEN) or ANSWER_CLOSE in text or any(text.count(tag) > 1 for tag in SPECIAL_TAGS):
        return None
    rationale = text[len(THINK_OPEN) :]
    closed = rationale.find(THINK_CLOSE)
    if closed >= 0:  # the rationale was closed: whatever came after it is replaced by the forced answer
        rationale = rationale[:closed]
    else:
        if rationale.count('"') % 2:  # cut inside a quote: drop it, and below the line number it belongs to
            rationale = rationale[: rationale.rfind('"')]
        rationale = _UNFINISHED_CITATION.sub("", rationale)
    if ANSWER_OPEN in rationale:
        return None
    return f"{THINK_OPEN}{rationale.rstrip()}{THINK_CLOSE}{ANSWER_OPEN}"


def neutralize_tags(text: str) -> str:
    """Make log text unable to produce the format's special tokens (log text is data, not markup).

    Any case and inner spacing (`</THINK>`, `< answer >`) is escaped: a tokenizer or a model may treat them alike.
    """
    return _ANY_TAG.sub(lambda match: match.group(0).replace("<", "&lt;").replace(">", "&gt;"), text)


def answer_token_budget(encode: Callable[[str], Sequence[int]]) -> int:
    """Tokens a tokenizer needs after an `<answer>` prefill for any verdict the parser accepts, plus `</answer>`.

    The tags are one token in the tiny tokenizer and several in a real one (SmolLM2: 3 each), so fast mode's
    completion budget is measured, not assumed: every case and whitespace spelling of each verdict is encoded
    after the prefill, and the longest continuation wins. `encode` maps text to ids without special tokens.
    """
    prefix = len(encode(ANSWER_OPEN))
    spellings = (
        f"{pad}{cased}{pad}"
        for verdict in VERDICTS
        for cased in (verdict, verdict.capitalize(), verdict.upper())
        for pad in ("", " ", "\n")
    )
    return max(len(encode(f"{ANSWER_OPEN}{text}{ANSWER_CLOSE}")) - prefix for text in spellings)


def starts_verdict(token: str) -> bool:
    """Whether a token's text (stripped, lowercased) is a non-empty prefix of a verdict."""
    text = token.strip().lower()
    return bool(text) and any(verdict.startswith(text) for verdict in VERDICTS)


def verdict_score(top_logprobs: dict[str, float] | Sequence[tuple[str, float]]) -> float | None:
    """P(anomalous) from the log-probs of the first answer token (fast mode: the token after the `<answer>` prefill).

    Every listed token whose text (stripped, lowercased) is a non-empty prefix of `anomalous` adds its probability
    to the anomalous mass, of `normal` to the normal mass (the verdicts start with different letters, so no token
    counts for both); the score is anomalous / (anomalous + normal). None when no listed token starts a verdict.
    """
    pairs = top_logprobs.items() if isinstance(top_logprobs, dict) else top_logprobs
    mass = dict.fromkeys(VERDICTS, 0.0)
    for token, logprob in pairs:
        text = token.strip().lower()
        for verdict in VERDICTS:
            if text and verdict.startswith(text):
                mass[verdict] += math.exp(logprob)
    total = mass["normal"] + mass["anomalous"]
    return mass["anomalous"] / total if total > 0 else None


def verdict_position(token_texts: Sequence[str], prefix: str = "") -> int | None:
    """Index of the completion token that starts the verdict: the first non-blank token beginning at or after the
    end of the first `<answer>` in `prefix + completion` (fast mode's prefill is the `prefix`), where the model
    wrote a token that starts a verdict. None if there is none: a model that answered `<answer>The user...` has
    no verdict to score (its alternatives there, `A` or `An` for an article, are not a verdict's log-probs)."""
    text = prefix
    offsets = []
    for token in token_texts:
        offsets.append(len(text))
        text += token
    opened = text.find(ANSWER_OPEN)
    if opened < 0:
        return None
    start = opened + len(ANSWER_OPEN)
    position = next((i for i, offset in enumerate(offsets) if offset >= start and token_texts[i].strip()), None)
    return position if position is not None and starts_verdict(token_texts[position]) else None


def completion_score(
    token_texts: Sequence[str], top_logprobs: Sequence[dict[str, float]], prefix: str = ""
) -> float | None:
    """P(anomalous) of a completion: `verdict_score` of the top log-probs at its verdict token (`verdict_position`);
    `top_logprobs[i]` maps token text -> log-prob at completion position i."""
    position = verdict_position(token_texts, prefix)
    if position is None or position >= len(top_logprobs):
        return None
    return verdict_score(top_logprobs[position])
