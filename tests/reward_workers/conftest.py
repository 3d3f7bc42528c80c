"""Fixtures for the reward tests."""

from __future__ import annotations

import pytest

from reward_workers.config import RewardConfig


@pytest.fixture
def cfg() -> RewardConfig:
    return RewardConfig()
