"""Fixtures for the evaluation tests: a hand-written prompt in the renderer's line format, and rows."""

from __future__ import annotations

import pytest

# Lines 4-6 carry the anomaly; line 7 belongs to the first template group.
PROMPT = "\n".join(
    [
        "L1-L3,L7 (x4) KERNEL INFO: instruction cache parity error corrected",
        "L4 KERNEL FATAL: data TLB error interrupt",
        "L5-L6 (x2) APP FATAL: ciod: failed to read message prefix on control stream",
    ]
)


@pytest.fixture
def prompt() -> str:
    return PROMPT


@pytest.fixture
def anomalous_row() -> dict:
    return {"id": "w1", "prompt": PROMPT, "label": "anomalous", "anomaly_lines": [4, 5, 6], "template_ids": [1, 2]}


@pytest.fixture
def normal_row() -> dict:
    return {"id": "w2", "prompt": PROMPT, "label": "normal", "anomaly_lines": [], "template_ids": [1]}
