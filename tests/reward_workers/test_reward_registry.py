"""The reward registry: registration, duplicates, lookup errors."""

from __future__ import annotations

import pytest

from reward_workers.registry import REWARDS, get_reward, known_rewards, register_reward


def test_builtin_rewards_are_registered() -> None:
    assert {"format", "answer", "grounding", "brevity"} <= set(known_rewards())


def test_duplicate_name_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_reward("format")(lambda sample, cfg: 0.0)


def test_register_and_get_new_reward() -> None:
    try:

        @register_reward("test_constant")
        def constant(sample, cfg) -> float:
            return 0.25

        assert get_reward("test_constant") is constant
    finally:
        REWARDS.pop("test_constant", None)


def test_unknown_name_lists_known_rewards() -> None:
    with pytest.raises(KeyError, match="unknown reward 'nope'.*answer.*brevity.*format.*grounding"):
        get_reward("nope")
