"""Teachers that write the reference rationale for a labelled session, and the CoT SFT examples built from them."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from pipelines.prompts import Entry, build_messages, collapse_lines
from pipelines.reasoning_format import render_completion
from pipelines.sessions import NORMAL_LABELS

MAX_RATIONALE_CHARS = 300  # a tiny model has to learn to produce this
MAX_QUOTE_CHARS = 60
SEVERE_LEVELS = {"FATAL", "SEVERE", "ERROR", "FAILURE", "CRIT", "CRITICAL", "ALERT", "EMERG", "WARN", "WARNING"}


class Teacher(Protocol):
    """Anything that explains a known verdict from the prompt alone (rule-based now; an LLM endpoint later)."""

    name: str

    def rationale(self, lines: Sequence[dict], label: str, window_text: str) -> str: ...


def quote(entry: Entry, window_text: str) -> str | None:
    """A short verbatim fragment of what the prompt shows for `entry`, or None if nothing quotable is shown."""
    if entry.render() not in window_text.split("\n"):
        return None  # the entry is past max_lines: evidence must be visible
    text = entry.content.split('"', 1)[0]  # a quote mark inside would make the citation ambiguous
    if len(text) > MAX_QUOTE_CHARS:
        cut = text[:MAX_QUOTE_CHARS]
        text = cut.rsplit(" ", 1)[0] if " " in cut else cut
    text = text.strip()
    return text if text and text in window_text else None


def _cite(entry: Entry, fragment: str, with_header: bool) -> str:
    header = f" ({entry.header})" if with_header and entry.header else ""
    return f'L{entry.first} "{fragment}"{header}'


def _evidence(entries: list[Entry], window_text: str, limit: int) -> list[tuple[Entry, str]]:
    """Up to `limit` (entry, quote) pairs with distinct quotes, in prompt order."""
    cited: dict[str, Entry] = {}
    for entry in entries:
        fragment = quote(entry, window_text)
        if fragment and fragment not in cited:
            cited[fragment] = entry
            if len(cited) == limit:
                break
    return [(entry, fragment) for fragment, entry in cited.items()]


def _fit(parts: list[str], render: Callable[[list[str]], str]) -> str:
    """Drop trailing citations until the rationale is short enough."""
    while len(parts) > 1 and len(render(parts)) > MAX_RATIONALE_CHARS:
        parts = parts[:-1]
    return render(parts)[:MAX_RATIONALE_CHARS]


def _has_alert(lines: Sequence[dict]) -> bool:
    return any(line.get("label") not in NORMAL_LABELS for line in lines)


def rule_rationale(lines: Sequence[dict], label: str, window_text: str) -> str:
    """Short rationale citing visible lines verbatim as L<n> "<text>": alert lines if anomalous, routine ones if not."""
    entries = collapse_lines(lines)
    n_templates = len({line.get("template_id", -1) for line in lines})
    if label == "normal":
        cites = [_cite(entry, text, False) for entry, text in _evidence(entries, window_text, 2)]
        opening = f"{len(lines)} lines, {n_templates} templates, all routine"
        return _fit(cites, lambda parts: f"{opening}: {', '.join(parts)}; no alert events." if parts else opening + ".")
    if any(line.get("label") is not None for line in lines):
        alerts = [entry for entry in entries if _has_alert(lines[entry.first - 1 : entry.last])]
    else:  # block-labelled formats (HDFS) mark no line: severe levels are the best visible evidence
        alerts = [entry for entry in entries if SEVERE_LEVELS & set(entry.header.upper().split())]
    cites = [_cite(entry, text, True) for entry, text in _evidence(alerts, window_text, 3)]
    if not cites:
        return f"{len(lines)} lines; no alert event is among the shown lines, but the session is labelled anomalous."
    reason = "These are failure events, not routine messages, so the session is anomalous."
    return _fit(cites, lambda parts: f"{'; '.join(parts)}. {reason}")


class RuleTeacher:
    """Offline teacher: deterministic rationales from line labels and levels; needs no model."""

    name = "rule"

    def rationale(self, lines: Sequence[dict], label: str, window_text: str) -> str:
        return rule_rationale(lines, label, window_text)


# name -> factory; an OpenAI-endpoint teacher or imported R-Log trajectories register here later.
TEACHERS: dict[str, Callable[[], Teacher]] = {RuleTeacher.name: RuleTeacher}


def sft_examples(rows: list[dict], fast_fraction: float, seed: int) -> list[dict]:
    """Chat SFT examples from prompt rows; a seeded `fast_fraction` of them train the answer-first mode."""
    rng = random.Random(seed)
    examples = []
    for row in rows:
        fast = rng.random() < fast_fraction
        examples.append(
            {
                "messages": build_messages(row["prompt"], fast),
                "completion": render_completion(row["reference"], row["label"], answer_first=fast),
            }
        )
    return examples
