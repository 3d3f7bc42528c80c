"""Perturbations a live log has, applied to prompt rows so a model must read them, not remember them.

A rendered session is rewritten as text: line numbers shifted by a random offset (the teacher's citations and
the anomaly lines move with them, so a number can only be copied from the prompt), groups shown in another order,
extra lines of routine templates already in the session, and a line of neutral free text. None of these changes the
label. Pure and deterministic in (row, settings, key): the trainer draws a group's view from its group id, and the
reward actors score exactly that view. Template sets (one template per prompt) are left alone.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.prompts.render import line_ranges

# A prompt group line: numbers, optional count, the rest (header and text); the hidden-lines trailer is not one.
_GROUP = re.compile(r"^(?P<numbers>L\d+(?:-L\d+)?(?:,L\d+(?:-L\d+)?)*)(?: \(x(?P<count>\d+)\))?(?P<rest>[ :].*)$")
_NUMBER = re.compile(r"\bL(\d+)\b")
_RANGE = re.compile(r"L(\d+)(?:-L(\d+))?")
NEUTRAL_TEXT = (
    "heartbeat ok",
    "cache statistics updated",
    "user session refreshed",
    "configuration reloaded without changes",
    "scheduled report generated",
    "periodic health check passed",
    "log rotation completed",
    "metrics flushed to disk",
)


@dataclass(frozen=True)
class Perturbation:
    """Which perturbations to apply (each drawn independently per row)."""

    line_offset: int = 0  # shift every line number by this much (0: none)
    shuffle_groups: bool = False
    extra_routine_lines: int = 0  # lines of a routine group already shown, appended after the last line
    free_text: str | None = None  # a neutral line appended after the last line


def rng_for(key: str | int, seed: int) -> random.Random:
    """A random generator fixed by (seed, key), the same in every process."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def draw(rng: random.Random, probability: float, max_offset: int, max_extra_lines: int) -> Perturbation:
    """A perturbation: with `probability` each of an offset in [1, max_offset], a shuffle, extra routine lines
    (1..max_extra_lines) and a neutral line."""
    return Perturbation(
        line_offset=rng.randint(1, max_offset) if max_offset and rng.random() < probability else 0,
        shuffle_groups=rng.random() < probability,
        extra_routine_lines=rng.randint(1, max_extra_lines) if max_extra_lines and rng.random() < probability else 0,
        free_text=rng.choice(NEUTRAL_TEXT) if rng.random() < probability else None,
    )


def _numbers(spec: str) -> list[int]:
    out: list[int] = []
    for first, last in _RANGE.findall(spec):
        out.extend(range(int(first), int(last or first) + 1))
    return out


_QUOTED = re.compile(r'("[^"\n]*")')


def _shift(text: str, offset: int) -> str:
    return _NUMBER.sub(lambda m: f"L{int(m.group(1)) + offset}", text)


def _shift_prefix(line: str, offset: int) -> str:
    """A prompt line with only its line numbers shifted (the log text after them may hold `L3` itself)."""
    match = _GROUP.match(line)
    if not match:
        return line
    return _shift(match.group("numbers"), offset) + line[match.end("numbers") :]


def _shift_outside_quotes(text: str, offset: int) -> str:
    """A rationale with its cited numbers shifted; quoted log text stays verbatim."""
    return "".join(part if part.startswith('"') else _shift(part, offset) for part in _QUOTED.split(text))


def perturb(row: dict, change: Perturbation, rng: random.Random | None = None) -> dict:
    """A copy of a prompt row with `change` applied to its prompt, reference and anomaly lines (label unchanged)."""
    rows = row["prompt"].split("\n")
    groups = [(i, _GROUP.match(text)) for i, text in enumerate(rows)]
    groups = [(i, m) for i, m in groups if m]
    if not groups:
        return dict(row)
    anomaly = set(row.get("anomaly_lines") or [])
    last = max(n for _, m in groups for n in _numbers(m.group("numbers")))
    texts = {i: rows[i] for i, _ in groups}
    if change.extra_routine_lines:
        routine = [(i, m) for i, m in groups if not set(_numbers(m.group("numbers"))) & anomaly]
        if routine:
            i, m = (rng or random.Random(0)).choice(routine)
            numbers = _numbers(m.group("numbers")) + list(range(last + 1, last + 1 + change.extra_routine_lines))
            texts[i] = f"{line_ranges(numbers)} (x{len(numbers)}){m.group('rest')}"
            last += change.extra_routine_lines
    order = [i for i, _ in groups]
    if change.free_text:
        last += 1
        texts[len(rows)] = f"L{last}: {change.free_text}"
        order.append(len(rows))
    if change.shuffle_groups:
        (rng or random.Random(0)).shuffle(order)
    trailer = [text for i, text in enumerate(rows) if i not in texts]
    prompt = "\n".join([texts[i] for i in order] + trailer)
    reference = row.get("reference", "")
    if change.line_offset:
        prompt = "\n".join(_shift_prefix(text, change.line_offset) for text in prompt.split("\n"))
        reference = _shift_outside_quotes(reference, change.line_offset)
        anomaly = {n + change.line_offset for n in anomaly}
    out = dict(row, prompt=prompt, reference=reference)
    if row.get("anomaly_lines") is not None:
        out["anomaly_lines"] = sorted(anomaly)
    return out


def augmented(row: dict, key: str | int, seed: int, probability: float, max_offset: int, max_extra: int) -> dict:
    """The training view of a row for draw `key` (a GRPO group id, an SFT draw): perturbed with `probability`
    per perturbation, or the row itself when that is 0. Deterministic in its arguments."""
    if probability <= 0:
        return row
    rng = rng_for(key, seed)
    return perturb(row, draw(rng, probability, max_offset, max_extra), rng)


def perturbed_copy(rows: Sequence[dict], seed: int) -> list[dict]:
    """The flip-rate test set: every row with extra routine lines, a neutral line and its groups reordered (line
    numbers kept, so the prompt stays as serving renders a longer window)."""
    out = []
    for row in rows:
        rng = rng_for(row["id"], seed)
        change = Perturbation(0, True, rng.randint(1, 3), rng.choice(NEUTRAL_TEXT))
        out.append(perturb(row, change, rng))
    return out
