"""Teachers that write the reference rationale for a labelled session, and the CoT SFT examples built from them."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Protocol

from pipelines.prompts import Group, build_messages, group_lines
from pipelines.reasoning_format import render_completion
from pipelines.sessions import carries_anomaly

MAX_RATIONALE_CHARS = 300  # a tiny model has to learn to produce this
MAX_QUOTE_CHARS = 60
MIN_QUOTE_CHARS = 12  # a shorter quote needs two words of 3+ letters or digits: "ok" is no evidence
_WORD = re.compile(r"[A-Za-z0-9]{3,}")
NORMAL_REASON = "These events are routine for this system, so the session is normal."
ANOMALOUS_REASON = "These are not routine events, so the session is anomalous."
NO_EVIDENCE = "No shown line is an alert by itself, but the events depart from routine operation: anomalous."


class Teacher(Protocol):
    """Anything that explains a known verdict from the prompt alone (rule-based now; an LLM endpoint later)."""

    name: str

    def rationale(self, lines: Sequence[dict], label: str, window_text: str) -> str: ...


def quote(group: Group, window_text: str) -> str | None:
    """A verbatim fragment of the text the prompt shows for `group` (never its header), or None if not shown."""
    if group.render() not in window_text.split("\n"):
        return None  # cut by the token budget: evidence must be visible
    text = group.text.split('"', 1)[0]  # a quote mark inside would make the citation ambiguous
    if len(text) > MAX_QUOTE_CHARS:
        cut = text[:MAX_QUOTE_CHARS]
        text = cut.rsplit(" ", 1)[0] if " " in cut else cut
    text = text.strip()
    return text if len(text) >= MIN_QUOTE_CHARS or len(_WORD.findall(text)) >= 2 else None


def _cite(group: Group, fragment: str, with_header: bool) -> str:
    header = f" ({group.header})" if with_header and group.header else ""
    return f'L{group.first} "{fragment}"{header}'  # a group is cited by its first line


def _evidence(groups: list[Group], window_text: str, limit: int) -> list[tuple[Group, str]]:
    """Up to `limit` (group, quote) pairs with distinct quotes, in prompt order."""
    cited: dict[str, Group] = {}
    for group in groups:
        fragment = quote(group, window_text)
        if fragment and fragment not in cited:
            cited[fragment] = group
            if len(cited) == limit:
                break
    return [(group, fragment) for fragment, group in cited.items()]


def _fit(parts: list[str], render: Callable[[list[str]], str]) -> str:
    """Drop trailing citations until the rationale is short enough."""
    while len(parts) > 1 and len(render(parts)) > MAX_RATIONALE_CHARS:
        parts = parts[:-1]
    return render(parts)[:MAX_RATIONALE_CHARS]


def rule_rationale(lines: Sequence[dict], label: str, window_text: str) -> str:
    """Short rationale citing shown lines verbatim as L<n> "<text>": anomaly lines if anomalous, routine ones if not."""
    groups = group_lines(lines)
    if label == "normal":
        cites = [_cite(group, text, False) for group, text in _evidence(groups, window_text, 2)]
        if not cites:
            return "Only routine events are shown, so the session is normal."
        return _fit(cites, lambda parts: f"Routine events: {', '.join(parts)}. {NORMAL_REASON}")
    carriers = [group for group in groups if any(carries_anomaly(lines[n - 1]) for n in group.numbers)]
    cites = [_cite(group, text, True) for group, text in _evidence(carriers, window_text, 3)]
    if not cites:
        return NO_EVIDENCE
    return _fit(cites, lambda parts: f"{'; '.join(parts)}. {ANOMALOUS_REASON}")


class RuleTeacher:
    """Offline teacher: deterministic rationales from the lines that carry the anomaly; needs no model."""

    name = "rule"

    def rationale(self, lines: Sequence[dict], label: str, window_text: str) -> str:
        """The rule rationale for `lines` under `label`, quoting only `window_text`."""
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
