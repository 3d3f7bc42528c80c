"""Train / validation / test assignment and the unseen-template counts (pure, no Ray)."""

from __future__ import annotations

from collections import Counter

from pipelines.prompts.novelty import has_unseen_template, seen_templates, unseen_counts
from pipelines.sessions.splits import (
    TEST,
    TRAIN,
    VALIDATION,
    chronological_bounds,
    chronological_split,
    drawn_validation,
    held_out_templates,
    stratified_splits,
    template_holdout_split,
    validation_count,
)


def test_chronological_validation_is_the_end_of_the_training_period():
    bounds = chronological_bounds(100, 0.7, 0.1)
    assert bounds == (63, 70)
    splits = [chronological_split(i, bounds) for i in range(100)]
    assert splits[:63] == [TRAIN] * 63 and splits[63:70] == [VALIDATION] * 7 and splits[70:] == [TEST] * 30
    assert chronological_bounds(100, 0.7, 0.0) == (70, 70)  # no validation: the old split
    assert validation_count(1, 0.5) == 0 and validation_count(2, 0.9) == 1  # one training session always stays


def test_spread_validation_is_drawn_across_the_training_period_and_test_stays_the_latest():
    bounds = chronological_bounds(1000, 0.8, 0.1)
    assert bounds == (720, 800)
    latest = [chronological_split(i, bounds, "latest") for i in range(1000)]
    assert latest == [chronological_split(i, bounds) for i in range(1000)]  # the default is the old split
    spread = [chronological_split(i, bounds, "spread", seed=3) for i in range(1000)]
    assert spread[800:] == [TEST] * 200  # the test period does not move
    drawn = [i for i, split in enumerate(spread) if split == VALIDATION]
    assert 55 <= len(drawn) <= 105  # expected 80 (the same share), drawn per ordinal
    assert min(drawn) < 200 and max(drawn) >= 600  # from across the period, not only its end
    assert spread == [chronological_split(i, bounds, "spread", seed=3) for i in range(1000)]  # every shard agrees
    assert spread != [chronological_split(i, bounds, "spread", seed=4) for i in range(1000)]


def test_drawn_validation_takes_a_seeded_share_of_each_label():
    labels = ["normal"] * 90 + ["anomalous"] * 10
    validates = drawn_validation(labels, 0.2, seed=0)
    assert Counter(label for label, v in zip(labels, validates) if v) == {"normal": 18, "anomalous": 2}
    assert drawn_validation(labels, 0.2, seed=0) == validates and drawn_validation(labels, 0.2, seed=1) != validates
    assert drawn_validation(labels, 0.0, seed=0) == [False] * 100


def test_stratified_validation_is_drawn_per_label_from_training_only():
    labels = ["anomalous"] * 20 + ["normal"] * 180
    splits = stratified_splits(labels, 0.8, 0.25, seed=3)
    per = Counter(zip(labels, splits))
    assert per[("anomalous", TEST)] == 4 and per[("normal", TEST)] == 36
    assert per[("anomalous", VALIDATION)] == 4 and per[("normal", VALIDATION)] == 36
    # The test part is exactly the one without validation: adding a validation slice moves no test session.
    without = stratified_splits(labels, 0.8, 0.0, seed=3)
    assert [s == TEST for s in splits] == [s == TEST for s in without]
    assert stratified_splits(labels, 0.8, 0.25, seed=3) == splits  # seeded


def test_template_holdout_keeps_frequent_templates_and_sends_their_sessions_to_test():
    sizes = {1: 900, 2: 10, 3: 10, 4: 10, 5: 10, 6: 10, 7: 10, 8: 10, 9: 10, 10: 10, 11: 10}
    held = held_out_templates(sizes, share=0.2, max_line_share=0.05, seed=0)
    assert len(held) == 2 and 1 not in held  # template 1 is 90% of the lines: never held out
    assert held == held_out_templates(sizes, 0.2, 0.05, seed=0) != held_out_templates(sizes, 0.2, 0.05, seed=1)
    one = next(iter(held))
    assert template_holdout_split("w1", [1, 2, one], held, 0.0, 0) == TEST
    kept = [template_holdout_split(f"w{i}", [1], held, 0.3, 0) for i in range(1000)]
    assert set(kept) == {TRAIN, VALIDATION} and 240 < kept.count(VALIDATION) < 360
    assert kept == [template_holdout_split(f"w{i}", [1], held, 0.3, 0) for i in range(1000)]  # per session id


def test_unseen_counts_against_the_training_templates():
    seen = seen_templates([[1, 2, -1], [2, 3]])
    assert seen == {1, 2, 3}
    assert has_unseen_template([1, 4], seen) and has_unseen_template([-1], seen) and not has_unseen_template([3], seen)
    assert unseen_counts([[1, 2], [4, 4, 1], [-1]], seen) == {
        "lines": 6,
        "unseen_lines": 3,
        "sessions": 3,
        "unseen_sessions": 2,
    }
