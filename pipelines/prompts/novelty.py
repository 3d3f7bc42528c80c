"""Which held-out lines and sessions show templates that training never saw (the unseen-template slice)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipelines.prompts.store import iter_examples
from pipelines.templates.miner import UNSEEN_ID


def seen_templates(template_id_lists: Iterable[Iterable[int]]) -> frozenset[int]:
    """Template ids that occur in the given (training) sessions; the unseen id never counts as seen."""
    return frozenset(t for ids in template_id_lists for t in ids if t != UNSEEN_ID)


def has_unseen_template(template_ids: Iterable[int], seen: frozenset[int]) -> bool:
    """Whether a session shows a line whose template never occurs in training (or that no template matched)."""
    return any(t == UNSEEN_ID or t not in seen for t in template_ids)


def unseen_counts(template_id_lists: Iterable[list[int]], seen: frozenset[int]) -> dict[str, int]:
    """Lines and sessions of a split, and how many of them show templates training never saw."""
    counts = dict.fromkeys(("lines", "unseen_lines", "sessions", "unseen_sessions"), 0)
    for ids in template_id_lists:
        unseen = sum(t == UNSEEN_ID or t not in seen for t in ids)
        counts["lines"] += len(ids)
        counts["unseen_lines"] += unseen
        counts["sessions"] += 1
        counts["unseen_sessions"] += unseen > 0
    return counts


def split_novelty(paths: dict[str, str | Path], splits: Iterable[str] = ("validation", "test")) -> dict[str, dict]:
    """Per held-out split, `unseen_counts` against the train split (template id columns streamed from parquet)."""
    seen = seen_templates(row["template_ids"] for row in iter_examples(paths["train"], ["template_ids"]))
    return {
        split: unseen_counts((row["template_ids"] for row in iter_examples(paths[split], ["template_ids"])), seen)
        for split in splits
        if split in paths
    }
