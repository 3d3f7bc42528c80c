"""Which split a session goes to: train, validation (held out of training: thresholds are chosen on it) or test."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence

from pipelines.sessions.grouping import stratified_train, train_count

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)
SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}  # compact per-session codes (numpy arrays)
VALIDATION_DRAWS = ("latest", "spread")  # chronological: validation is the training period's end, or drawn across it


def validation_count(n_train: int, fraction: float) -> int:
    """How many of `n_train` training sessions are held out for validation; at least one training session stays."""
    if fraction <= 0 or n_train < 2:
        return 0
    return min(max(round(n_train * fraction), 1), n_train - 1)


def chronological_bounds(n_sessions: int, train_fraction: float, validation_fraction: float) -> tuple[int, int]:
    """(first validation ordinal, first test ordinal): the earliest sessions train, the latest of the training
    period validate, the rest test. Both ends are known before any session is seen, so windows can stream."""
    n_train = train_count(n_sessions, train_fraction)
    return n_train - validation_count(n_train, validation_fraction), n_train


def chronological_split(ordinal: int, bounds: tuple[int, int], draw: str = "latest", seed: int = 0) -> str:
    """The split of the session at `ordinal` (0-based, in time order) under `chronological_bounds`: test from
    bounds[1]; before it the latest sessions validate, or (`draw` spread) a seeded draw across the training period of
    the same expected share (per ordinal, so every shard agrees without seeing the others)."""
    if ordinal >= bounds[1]:
        return TEST
    if draw == "latest":
        return TRAIN if ordinal < bounds[0] else VALIDATION
    share = (bounds[1] - bounds[0]) / bounds[1]
    return VALIDATION if _draw(seed, f"ordinal:{ordinal}") < share else TRAIN


def drawn_validation(labels: Sequence[str | None], fraction: float, seed: int) -> list[bool]:
    """Per training session, whether it validates instead: a seeded `fraction` of each label."""
    if fraction <= 0:
        return [False] * len(labels)
    return [not stays for stays in stratified_train(labels, 1 - fraction, seed + 1)]


def stratified_splits(
    labels: Sequence[str | None], train_fraction: float, validation_fraction: float, seed: int
) -> list[str]:
    """Per session: a seeded `train_fraction` of each label trains or validates, and of those a seeded
    `validation_fraction` of each label validates."""
    trains = stratified_train(labels, train_fraction, seed)
    splits = [TRAIN if kept else TEST for kept in trains]
    members = [index for index, kept in enumerate(trains) if kept]
    validates = drawn_validation([labels[i] for i in members], validation_fraction, seed)
    for index, validate in zip(members, validates, strict=True):
        if validate:
            splits[index] = VALIDATION
    return splits


def held_out_templates(sizes: Mapping[int, int], share: float, max_line_share: float, seed: int) -> frozenset[int]:
    """A seeded `share` of the templates whose fitted lines are at most `max_line_share` of all fitted lines.

    `sizes` is template id -> lines the miner fitted it on (its drain3 cluster size). Frequent templates are never
    held out: one routine template in every window would send every window to test. Deterministic in its
    arguments, so every shard of a streaming build computes the same set from the frozen miner.
    """
    total = sum(sizes.values())
    eligible = sorted(t for t, size in sizes.items() if total and size / total <= max_line_share)
    count = round(len(eligible) * share)
    return frozenset(random.Random(seed).sample(eligible, count)) if count else frozenset()


def _draw(seed: int, key: str) -> float:
    """A uniform [0, 1) number fixed by (seed, key): the same in every process."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def template_holdout_split(
    session_id: str, template_ids: Iterable[int], held_out: frozenset[int], validation_fraction: float, seed: int
) -> str:
    """Test when any line's template is held out (all its sessions leave training); otherwise train, or
    validation for a seeded `validation_fraction` of sessions (drawn per session id)."""
    if held_out and any(template_id in held_out for template_id in template_ids):
        return TEST
    return VALIDATION if _draw(seed, session_id) < validation_fraction else TRAIN
