"""The domain teacher: rationales that say what makes a line a fault or a handled condition, as an operator would.

The rule teacher's template rationales were label-conditioned boilerplate ("reports 'error': a fault" against
"mentions 'error' as an expected, handled condition"): they gave the model no reason that tells the classes apart.
This teacher names the kind of fault (a crash, a hardware failure, lost communication, failed storage, a missing
resource, a security violation) or why a line is handled (corrected, retried, a warning) or routine (status,
counters, start/stop), quoting the words that decide. Every rationale opens with its stance, `Fault:` or `Normal:`,
so the verdict is committed to before any evidence, and the two shapes never mix (eval counts rationales that do:
`rationale_stance`). It is offline and deterministic, and knows only the label and the prompt's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.prompts.render import Group, group_lines
from pipelines.prompts.teacher import MAX_ANOMALY_CITATIONS, MAX_RATIONALE_CHARS, cite_fitted, quote_around, quote_of
from pipelines.sessions.grouping import carries_anomaly


@dataclass(frozen=True)
class Cue:
    """A kind of evidence: its name, the words that show it, and what it means to an operator."""

    name: str
    pattern: re.Pattern
    meaning: str


def _cue(name: str, words: str, meaning: str) -> Cue:
    return Cue(name, re.compile(rf"\b(?:{words})", re.IGNORECASE), meaning)


# Faults, most specific first: the first that matches names the kind. General operations vocabulary (what an
# on-call engineer reads as a fault in any system), not phrases of one corpus.
FAULTS = (
    _cue(
        "crash",
        r"segmentation (?:fault|violation)|segfault|core dump|panic|abort|exited abnormally|killed|out of memory|"
        r"kernel terminated|assert|oops",
        "a crash of a process or the kernel",
    ),
    _cue(
        "hardware",
        r"machine check|uncorrectable|non-recoverable|parity error|hardware|memory error|temperature|power|fan\b|"
        r"drive (?:failed|failure|not ready)|disk (?:failed|failure)|input/output error|i/o error|ecc\b",
        "a hardware failure",
    ),
    _cue(
        "communication",
        r"connection (?:refused|reset|timed out|lost|failure)|no route to host|timed out|timeout|unreachable|"
        r"not responding|lost connection|broken pipe|disconnected|link (?:down|failed|failure)|could not contact",
        "lost communication with a peer",
    ),
    _cue(
        "storage",
        r"mount(?:ing)? (?:failure|failed)|failed to mount|journal|superblock|file ?system error|fs error|"
        r"read-only file system|no space left|inode",
        "a storage or file-system failure",
    ),
    _cue(
        "security",
        r"authentication failure|spoof|attack|exploit|unauthori[sz]ed|break-?in|intrusion|permissions",
        "a security or integrity violation",
    ),
    _cue(
        "resource",
        r"permission denied|cannot|can't|no such file|not defined|does not exist|unknown user|not found|missing|"
        r"unable to|failed to|not available|not running|not present|could not|denied|allocation failed",
        "a missing or refused resource",
    ),
    _cue(
        "error",
        r"fatal|error|fail|critical|exception|invalid|bad\b|illegal|corrupt|mismatch|unexpected|overflow|underflow|"
        r"interrupt|severe|alert|problem",
        "an error state",
    ),
)
# Why a line that names a fault is still normal: the system handled it.
HANDLED = _cue(
    "handled",
    r"corrected|correctable|attempting to correct|retry|retrying|recovered|suppressing|threshold|deferred|ignor|"
    r"warning|not fatal|expected|no alerts?\b",
    "reported as handled",
)
# What routine lines are (the first that matches; the last is the fallback).
ROUTINE = (
    _cue(
        "registers",
        r"(?:[a-z]*\d*[=:] ?(?:0x)?[0-9a-f]{6,}\b)|(?:\b[0-9a-f]{8}\b.*){2}|\.{4,}",
        "a dump of register or counter values",
    ),
    _cue("start/stop", r"start|stop|exit|shut|boot|load|init|launch|begin|finish|complet|done|ready", "a start/stop"),
    _cue("session", r"session|login|logout|accepted|connect|opened|closed|registered|auth", "a session event"),
    _cue("transfer", r"receiv|sent|send|transfer|deliver|served|request|packet|block", "a routine transfer"),
    _cue(
        "configuration",
        r"=|version|using|copyright|config|setting|enabled|uid|running|mode|found|detected|total|size|count",
        "configuration or inventory",
    ),
    _cue("status", r"", "informational status"),
)


def fault_cue(text: str) -> tuple[Cue, re.Match] | None:
    """The first fault kind the text shows, and where."""
    for cue in FAULTS:
        match = cue.pattern.search(text)
        if match:
            return cue, match
    return None


def handled_cue(text: str) -> re.Match | None:
    return HANDLED.pattern.search(text)


def routine_cue(text: str) -> Cue:
    return next((cue for cue in ROUTINE if cue.pattern.search(text)), ROUTINE[-1])


SESSION_QUOTE_CHARS = 48  # a session's citations quote more of each line (`cite_fitted` shortens them to fit)


def _cite(
    group: Group, window_text: str, match: re.Match | None, number: int | None = None, limit: int | None = None
) -> str | None:
    """`L<n> "<quote around the deciding words>"`, or None when the group is not shown."""
    word = match.group(0).lower() if match else None
    fragment = quote_around(group, window_text, word, *([limit] if limit else []))
    if fragment is None:
        return None
    return f'L{number or group.first} "{fragment}"'


def template_rationale(group: Group, label: str, window_text: str) -> str:
    """One template (a one-line session): the kind of fault, or why it is handled or routine, citing its words."""
    text = group.text
    fault, handled = fault_cue(text), handled_cue(text)
    if label == "anomalous":
        cite = _cite(group, window_text, fault[1] if fault else None) or f"L{group.first}"
        if fault:
            return f"Fault: {cite} shows {fault[0].meaning}; an operator must act, so anomalous."
        return f"Fault: {cite} reports a state this system logs only when something failed, so anomalous."
    if fault and handled:
        cite = _cite(group, window_text, handled) or f"L{group.first}"
        return f"Normal: {cite} names a problem the system {_handled_phrase(handled)}; no action needed."
    if fault:
        cite = _cite(group, window_text, fault[1]) or f"L{group.first}"
        return f"Normal: {cite} is a transient condition this system logs in routine operation; no action needed."
    cite = _cite(group, window_text, None) or f"L{group.first}"
    return f"Normal: {cite} is {routine_cue(text).meaning}, routine status; no action needed."


def _handled_phrase(match: re.Match) -> str:
    word = match.group(0).lower()
    if word.startswith(("correct", "attempting")):
        return "corrected itself"
    if word.startswith(("retry", "resynch", "recovered", "deferred", "will be")):
        return "retries or recovers from"
    if word.startswith(("suppress", "threshold")):
        return "counts against a threshold"
    if word.startswith("warning"):
        return "reports only as a warning"
    return "reports as handled"


def session_rationale(lines: Sequence[dict], label: str, window_text: str, expected: dict[int, str]) -> str:
    """A session: the anomaly lines' kinds of fault (each anomaly group shown, up to MAX_ANOMALY_CITATIONS), or the
    routine and handled events that make it normal."""
    groups = group_lines(lines)
    if label == "normal":
        parts = []
        for group in groups:
            handled = handled_cue(group.text) if fault_cue(group.text) else None
            cite = _cite(group, window_text, handled, limit=SESSION_QUOTE_CHARS)
            if cite:
                kind = f"{_handled_phrase(handled)} a problem" if handled else routine_cue(group.text).meaning
                parts.append(f"{cite} ({kind})")
            if len(parts) == 2:
                break
        if not parts:
            return "Normal: only routine events are shown; no fault, so normal."
        return cite_fitted(parts, lambda p: f"Normal: {'; '.join(p)}; no fault, so normal.")
    carriers = []
    for group in groups:
        lines_here = [n for n in group.numbers if carries_anomaly(lines[n - 1])]
        if lines_here and quote_of(group, window_text):
            carriers.append((group, lines_here[0]))
    parts = []
    for group, number in carriers[:MAX_ANOMALY_CITATIONS]:
        fault = fault_cue(group.text)
        cite = _cite(group, window_text, fault[1] if fault else None, number, SESSION_QUOTE_CHARS)
        parts.append(f"{cite} ({fault[0].meaning if fault else 'a state logged only on failure'})")
    if parts:
        return cite_fitted(parts, lambda p: f"Fault: {'; '.join(p)}; an operator must act, so anomalous.")
    return _missing_or_rare(lines, groups, window_text, expected)


def _missing_or_rare(lines: Sequence[dict], groups: list[Group], window_text: str, expected: dict[int, str]) -> str:
    """An anomaly no line carries: an expected event is missing, else the rarest events depart from routine."""
    present = {line.get("template_id") for line in lines}
    missing = [text for template_id, text in expected.items() if template_id not in present]
    shown = [(g, _cite(g, window_text, None, limit=SESSION_QUOTE_CHARS)) for g in groups]
    shown = [(g, c) for g, c in shown if c]
    if missing:
        name = missing[0].split('"', 1)[0][:48].strip()
        opening = f"{shown[0][1]} is there, but " if shown else ""
        return (
            f"Fault: {opening}no line shows '{name}', which every normal session has: it never completed, so "[
                : MAX_RATIONALE_CHARS - 11
            ]
            + "anomalous."
        )
    rare = sorted(shown, key=lambda pair: (pair[0].count, pair[0].first))[:2]
    if not rare:
        return "Fault: the events depart from routine operation, so anomalous."
    parts = [f"{cite} (x{group.count})" for group, cite in rare]
    return cite_fitted(
        parts, lambda p: f"Fault: {'; '.join(p)} are rare events that depart from routine, so anomalous."
    )


class DomainTeacher:
    """Offline teacher: the kind of fault, or why a line is handled or routine, in a rationale opened by its stance."""

    name = "domain"

    def __init__(self, expected: dict[int, str] | None = None):
        self.expected = expected or {}  # templates nearly every normal training session has (block labels)

    def rationale(self, lines: Sequence[dict], label: str, window_text: str) -> str:
        """The domain rationale for `lines` under `label`, quoting only `window_text`."""
        groups = group_lines(lines)
        if len(lines) == 1 and not groups[0].header:  # a bare template (template CSVs): judge its words
            return template_rationale(groups[0], label, window_text)[:MAX_RATIONALE_CHARS]
        return session_rationale(lines, label, window_text, self.expected)[:MAX_RATIONALE_CHARS]


# Markers of a rationale's stance, looked for outside its quotes (quoted log text may say anything).
_QUOTED = re.compile(r'"[^"\n]*"')
_ANOMALOUS_MARKERS = re.compile(
    r"\bfault:|\bnot routine\b|\banomalous\b|\bdepart|\bnever completed\b|\ban operator must act\b", re.IGNORECASE
)
_NORMAL_MARKERS = re.compile(
    r"^normal:|(?<!not )\broutine events\b|\bso (?:the session is )?normal\b|: normal\b|\bno fault\b|"
    r"\bno action needed\b|\bhandled\b",
    re.IGNORECASE | re.MULTILINE,
)


def rationale_stance(rationale: str) -> set[str]:
    """The stances a rationale takes outside its quotes: {"normal"}, {"anomalous"}, both (it contradicts itself), or
    none."""
    text = _QUOTED.sub('""', rationale)
    stances = set()
    if _ANOMALOUS_MARKERS.search(text):
        stances.add("anomalous")
    if _NORMAL_MARKERS.search(text):
        stances.add("normal")
    return stances


def contradicts(rationale: str, verdict: str | None) -> bool:
    """Whether a rationale argues against its own verdict (a stance of the other class, in any part of it)."""
    if verdict not in ("normal", "anomalous"):
        return False
    return bool(rationale_stance(rationale) - {verdict})
