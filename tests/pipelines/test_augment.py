"""Perturbed training views: numbers move with the citations, labels and evidence survive, quotes stay verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.completion_format import render_completion
from contract.evidence import index_prompt
from pipelines.prompts.augment import Perturbation, augmented, perturb, perturbed_copy
from pipelines.prompts.domain_teacher import DomainTeacher
from pipelines.prompts.rows import rows_in_process
from reward_workers.config import RewardConfig
from reward_workers.registry import RewardInput
from reward_workers.rewards.grounding_reward import grounding_reward

BGL = Path(__file__).resolve().parents[2] / "data" / "bgl" / "BGL_2k.log"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return rows_in_process(BGL, "bgl", 20, 400, DomainTeacher())


def grounding(row: dict) -> float:
    completion = render_completion(row["reference"], row["label"])
    sample = RewardInput(row["prompt"], completion, row["label"], row["reference"], None, tuple(row["anomaly_lines"]))
    return grounding_reward(sample, RewardConfig())


def test_a_shift_moves_prompt_numbers_citations_and_anomaly_lines_together(rows):
    row = next(r for r in rows if r["label"] == "anomalous")
    view = perturb(row, Perturbation(line_offset=100))
    assert view["label"] == row["label"] and view["anomaly_lines"] == [n + 100 for n in row["anomaly_lines"]]
    before, after = index_prompt(row["prompt"]), index_prompt(view["prompt"])
    assert [g.text for g in before.groups] == [g.text for g in after.groups]  # the log text is untouched
    assert [tuple(n + 100 for n in g.numbers) for g in before.groups] == [g.numbers for g in after.groups]
    assert grounding(view) == grounding(row) > 0.9


def test_quoted_log_text_that_looks_like_a_line_number_is_not_shifted():
    row = {"prompt": "L1 KERNEL FATAL: L3 major internal error", "reference": 'Fault: L1 "L3 major internal error"'}
    row |= {"label": "anomalous", "anomaly_lines": [1]}
    view = perturb(row, Perturbation(line_offset=5))
    assert view["prompt"] == "L6 KERNEL FATAL: L3 major internal error"
    assert view["reference"] == 'Fault: L6 "L3 major internal error"'


def test_every_view_of_every_window_keeps_the_teacher_grounded(rows):
    for row in rows:
        honest = grounding(row)
        for key in range(3):
            view = augmented(row, key, seed=7, probability=1.0, max_offset=500, max_extra=3)
            assert view["label"] == row["label"]
            assert grounding(view) == pytest.approx(honest), (row["prompt"], view["prompt"], view["reference"])
            assert view == augmented(row, key, seed=7, probability=1.0, max_offset=500, max_extra=3)  # deterministic
    assert augmented(rows[0], 0, 7, 0.0, 500, 3) is rows[0]


def test_the_flip_rate_copy_adds_routine_lines_and_free_text_but_keeps_numbers(rows):
    copy = perturbed_copy(rows, seed=1)
    for row, perturbed in zip(rows, copy, strict=True):
        assert perturbed["anomaly_lines"] == row["anomaly_lines"] and perturbed["id"] == row["id"]
        before, after = index_prompt(row["prompt"]), index_prompt(perturbed["prompt"])
        assert set(before.by_line) < set(after.by_line)  # more lines, the old ones still there
        for number, group in before.by_line.items():
            assert after.groups[after.by_line[number]].text == before.groups[group].text
