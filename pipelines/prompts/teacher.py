"""Teachers that write the reference rationale for a labelled session, and the CoT SFT examples built from them."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from contract.completion_format import render_completion
from pipelines.prompts.render import Group, build_messages, group_lines
from pipelines.sessions.grouping import carries_anomaly

MAX_RATIONALE_CHARS = 300  # a tiny model has to learn to produce this
MAX_ANOMALY_CITATIONS = 3  # anomaly groups an anomalous rationale cites (the grounding reward's full coverage)
MAX_QUOTE_CHARS = 60
MIN_QUOTE_CHARS = 12  # a shorter quote needs two words of 3+ letters or digits: "ok" is no evidence
_WORD = re.compile(r"[A-Za-z0-9]{3,}")
NORMAL_REASON = "These events are routine for this system, so the session is normal."
ANOMALOUS_REASON = "These are not routine events, so the session is anomalous."
NO_EVIDENCE = "No shown line is an alert by itself, but the events depart from routine operation: anomalous."
MISSING_REASON = "which every normal session has, so it never completed: anomalous."
RARE_REASON = "No line is an alert by itself, but these counts depart from routine operation: anomalous."


class Teacher(Protocol):
    """Explains a known verdict for one session while the dataset is built (the rule teacher: every row)."""

    name: str

    def rationale(self, lines: Sequence[dict], label: str, window_text: str) -> str: ...


@dataclass
class TeachResult:
    """Per row: the accepted reference or None; rejected rows counted by reason; cache hits and requests."""

    references: list[str | None]
    rejected: Counter = field(default_factory=Counter)
    cached: int = 0
    requests: int = 0

    def summary(self) -> dict:
        return {
            "accepted": sum(ref is not None for ref in self.references),
            "rejected": dict(sorted(self.rejected.items())),
            "cached": self.cached,
            "requests": self.requests,
        }


class RowTeacher(Protocol):
    """Rewrites references of written train rows (an LLM endpoint, imported trajectories); None keeps the rule one."""

    name: str

    def teach(self, rows: Sequence[dict]) -> TeachResult: ...


def quote_of(group: Group, window_text: str) -> str | None:
    """A verbatim fragment of the text the prompt shows for `group` (never its header), or None if not shown."""
    if group.render() not in window_text.split("\n"):
        return None  # cut by the token budget: evidence must be visible
    text = group.text.split('"', 1)[0]  # a quote mark inside would make the citation ambiguous
    if len(text) > MAX_QUOTE_CHARS:
        cut = text[:MAX_QUOTE_CHARS]
        text = cut.rsplit(" ", 1)[0] if " " in cut else cut
    text = text.strip()
    if len(text) >= MIN_QUOTE_CHARS or len(_WORD.findall(text)) >= 2:
        return text
    return text if text == group.text.strip() and _WORD.search(text) else None  # a short line, quoted whole


def _cite(group: Group, fragment: str, with_header: bool) -> str:
    header = f" ({group.header})" if with_header and group.header else ""
    return f'L{group.first} "{fragment}"{header}'  # a group is cited by its first line


def _evidence(groups: list[Group], window_text: str, limit: int) -> list[tuple[Group, str]]:
    """Up to `limit` (group, quote) pairs with distinct quotes, in prompt order."""
    cited: dict[str, Group] = {}
    for group in groups:
        fragment = quote_of(group, window_text)
        if fragment and fragment not in cited:
            cited[fragment] = group
            if len(cited) == limit:
                break
    return [(group, fragment) for fragment, group in cited.items()]


_FIRST_QUOTE = re.compile(r'"([^"]*)"')


def _shorten_quote(part: str, limit: int) -> str:
    """A citation part with its quote cut to a prefix of at most `limit` characters that is still evidence."""
    match = _FIRST_QUOTE.search(part)
    if not match or len(match.group(1)) <= limit:
        return part
    cut = match.group(1)[:limit]
    cut = (cut.rsplit(" ", 1)[0] if " " in cut else cut).strip()
    if len(cut) < MIN_QUOTE_CHARS and len(_WORD.findall(cut)) < 2:
        return part
    return part[: match.start(1)] + cut + part[match.end(1) :]


def cite_fitted(parts: list[str], render: Callable[[list[str]], str]) -> str:
    """The rationale within MAX_RATIONALE_CHARS: quotes are shortened first (every citation stays, so coverage does),
    trailing citations dropped only when even short quotes do not fit."""
    for limit in (MAX_QUOTE_CHARS, 44, 32, 24, 16, 12):
        shortened = [_shorten_quote(part, limit) for part in parts]
        if len(render(shortened)) <= MAX_RATIONALE_CHARS:
            return render(shortened)
    while len(parts) > 1 and len(render(parts)) > MAX_RATIONALE_CHARS:
        parts = parts[:-1]
    return render(parts)[:MAX_RATIONALE_CHARS]


def _missing_events(
    lines: Sequence[dict], groups: list[Group], window_text: str, expected: dict[int, str]
) -> str | None:
    """An anomalous session that lacks an event every normal session has: say which, citing what is there."""
    present = {line.get("template_id") for line in lines}
    missing = [text for template_id, text in expected.items() if template_id not in present]
    if not missing:
        return None
    shown = _evidence(groups, window_text, 1)
    opening = f"{_cite(*shown[0], False)} is there, but " if shown else ""
    name = missing[0].split('"', 1)[0][:MAX_QUOTE_CHARS].strip()
    return f"{opening}no line shows '{name}', {MISSING_REASON}"[:MAX_RATIONALE_CHARS]


def _rarest(groups: list[Group], window_text: str) -> str:
    """No line is an alert and nothing is missing: cite the least repeated events, with their counts."""
    ranked = sorted(groups, key=lambda group: (len(group.numbers), group.first))
    cites = [
        f"{_cite(group, text, False)} (x{len(group.numbers)})" for group, text in _evidence(ranked, window_text, 2)
    ]
    if not cites:
        return NO_EVIDENCE
    return cite_fitted(cites, lambda parts: f"{'; '.join(parts)}. {RARE_REASON}")


# What a single template's words say (RationAnomaly's template task: one template is one session).
FAILURE_WORDS = (
    "fatal",
    "error",
    "errors",
    "fail",
    "failed",
    "failure",
    "failing",
    "exception",
    "panic",
    "abort",
    "aborted",
    "critical",
    "crash",
    "crashed",
    "corrupt",
    "corrupted",
    "denied",
    "refused",
    "timeout",
    "timed",
    "unable",
    "cannot",
    "lost",
    "dead",
    "died",
    "killed",
    "segfault",
    "overflow",
    "violation",
    "invalid",
    "unreachable",
    "down",
    "bad",
    "broken",
    "interrupt",
    "parity",
    "severe",
    "mismatch",
    "illegal",
    "unknown",
    "missing",
)
ROUTINE_WORDS = (
    "success",
    "successful",
    "succeeded",
    "completed",
    "complete",
    "started",
    "starting",
    "registered",
    "connected",
    "ok",
    "done",
    "accepted",
    "opened",
    "closed",
    "session",
    "generating",
    "corrected",
    "enabled",
    "finished",
    "loaded",
    "received",
    "sent",
    "update",
    "updated",
    "info",
)
_WORDS = re.compile(r"[a-z]+")


TEMPLATE_QUOTE_CHARS = 28  # a template's rationale quotes the words that decide, not the whole template


def quote_around(group: Group, window_text: str, word: str | None, limit: int = TEMPLATE_QUOTE_CHARS) -> str | None:
    """A verbatim piece of the shown template of at most `limit` characters, around `word` when given."""
    full = quote_of(group, window_text)  # None when the template is not shown
    if full is None:
        return None
    text = group.text.split('"', 1)[0]
    at = text.lower().find(word) if word else -1
    begin = 0
    if at > 0:  # start a few words before the deciding word, on a word boundary
        begin = max(0, at - limit // 2)
        while 0 < begin < at and text[begin - 1] != " ":
            begin += 1
    piece = text[begin : begin + limit]
    if begin + limit < len(text) and " " in piece.strip():
        trimmed = piece.rsplit(" ", 1)[0]
        piece = trimmed if at < 0 or begin + len(trimmed) >= at + len(word or "") else piece
    piece = piece.strip()
    usable = len(piece) >= MIN_QUOTE_CHARS or len(_WORD.findall(piece)) >= 2
    return piece if usable else full[:limit].strip()


def template_rationale(group: Group, label: str, window_text: str) -> str:
    """One template judged by what its words say about severity and state, citing the deciding words verbatim.

    Short on purpose (about 30 tokens with a real tokenizer): the model has to produce it at every rollout.
    """
    words = _WORDS.findall(group.text.lower())
    failures = list(dict.fromkeys(word for word in words if word in FAILURE_WORDS))[:2]
    routine = next((word for word in words if word in ROUTINE_WORDS), None)
    fragment = quote_around(group, window_text, failures[0] if failures else routine)
    cite = f'L{group.first} "{fragment}"' if fragment else f"L{group.first}"
    if label == "anomalous":
        if failures:
            return f"{cite} reports {' and '.join(repr(word) for word in failures)}: a fault, so anomalous."
        return f"{cite} is a state logged only when something went wrong: anomalous."
    if failures:
        return f"{cite} mentions '{failures[0]}' as an expected, handled condition: normal."
    state = f"'{routine}' " if routine else ""
    return f"{cite} is a routine {state}message: normal."


def rule_rationale(lines: Sequence[dict], label: str, window_text: str, expected: dict[int, str] | None = None) -> str:
    """Short rationale citing shown lines verbatim as L<n> "<text>": anomaly lines if anomalous, routine ones if not.

    Without an anomaly-carrying line, an anomalous session is explained by an `expected` event it lacks (a
    template nearly every normal training session has), else by its rarest events.
    """
    groups = group_lines(lines)
    if len(lines) == 1 and not groups[0].header:  # a bare template (template CSVs): judge its words
        return template_rationale(groups[0], label, window_text)[:MAX_RATIONALE_CHARS]
    if label == "normal":
        cites = [_cite(group, text, False) for group, text in _evidence(groups, window_text, 2)]
        if not cites:
            return "Only routine events are shown, so the session is normal."
        return cite_fitted(cites, lambda parts: f"Routine events: {', '.join(parts)}. {NORMAL_REASON}")
    carriers = [group for group in groups if any(carries_anomaly(lines[n - 1]) for n in group.numbers)]
    cites = []
    for group in carriers:  # every anomaly group shown, each cited on a line that carries the anomaly
        fragment = quote_of(group, window_text)
        if fragment:
            first = next(n for n in group.numbers if carries_anomaly(lines[n - 1]))
            cites.append(_cite(Group((first,), group.header, group.text, group.severe), fragment, True))
        if len(cites) == MAX_ANOMALY_CITATIONS:
            break
    if carriers and not cites:
        return NO_EVIDENCE  # the lines that carry it are cut from the prompt: cite nothing rather than routine
    if not cites:
        return _missing_events(lines, groups, window_text, expected or {}) or _rarest(groups, window_text)
    return cite_fitted(cites, lambda parts: f"{'; '.join(parts)}. {ANOMALOUS_REASON}")


class RuleTeacher:
    """Offline teacher: deterministic rationales from the lines that carry the anomaly; needs no model."""

    name = "rule"

    def __init__(self, expected: dict[int, str] | None = None):
        self.expected = expected or {}  # templates nearly every normal training session has (block labels)

    def rationale(self, lines: Sequence[dict], label: str, window_text: str) -> str:
        """The rule rationale for `lines` under `label`, quoting only `window_text`."""
        return rule_rationale(lines, label, window_text, self.expected)


# name -> factory of the build-time teachers; row teachers (endpoint, rlog) are made by `dataset.row_teacher`.
TEACHERS: dict[str, Callable[[], Teacher]] = {RuleTeacher.name: RuleTeacher}


def sft_example(row: dict, fast: bool, data_format: str | None = None) -> dict:
    """One chat SFT example: the row's prompt, and its reference as the completion (answer first when `fast`)."""
    return {
        "messages": build_messages(row["prompt"], fast, data_format),
        "completion": render_completion(row["reference"], row["label"], answer_first=fast),
    }


def fast_mode_draws(n: int, fast_fraction: float, seed: int) -> list[bool]:
    """Which of `n` rows train the answer-first mode: a seeded `fast_fraction` of them."""
    rng = random.Random(seed)
    return [rng.random() < fast_fraction for _ in range(n)]


def sft_examples(rows: Sequence[dict], fast_fraction: float, seed: int, data_format: str | None = None) -> list[dict]:
    """Chat SFT examples from prompt rows; a seeded `fast_fraction` of them train the answer-first mode."""
    draws = fast_mode_draws(len(rows), fast_fraction, seed)
    return [sft_example(row, fast, data_format) for row, fast in zip(rows, draws, strict=True)]
