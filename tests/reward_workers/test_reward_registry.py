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


def test_every_reward_module_is_discovered() -> None:
    import pkgutil

    import reward_workers.rewards as package

    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert {f"{name}_reward" for name in known_rewards()} >= modules  # each file registers the reward it is named for
    assert {"answer", "brevity", "format", "grounding", "perplexity"} <= set(known_rewards())


def test_rewards_declare_whether_they_need_reference_logprobs() -> None:
    from reward_workers.registry import needs_ref_logprobs

    assert needs_ref_logprobs(["answer", "perplexity"])
    assert not needs_ref_logprobs(["answer", "format", "grounding", "brevity"])
    assert not needs_ref_logprobs([])
