"""The reward registry: name -> pure function of (RewardInput, RewardConfig) -> float, found by module discovery.

Every module of `reward_workers.rewards` is imported on first lookup, so adding a reward is adding one file
that declares itself with `register_reward`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from reward_workers.reward_spec import NEEDS_REF_LOGPROBS, REWARDS, RewardFn, RewardInput, register_reward

__all__ = [
    "REWARDS",
    "RewardFn",
    "RewardInput",
    "get_reward",
    "known_rewards",
    "needs_ref_logprobs",
    "register_reward",
]

BUILTIN_PACKAGE = "reward_workers.rewards"


def _load_builtin_rewards() -> None:
    package = importlib.import_module(BUILTIN_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{BUILTIN_PACKAGE}.{module.name}")


def known_rewards() -> list[str]:
    """Names of all registered rewards, sorted."""
    _load_builtin_rewards()
    return sorted(REWARDS)


def get_reward(name: str) -> RewardFn:
    """The reward registered under `name`; unknown names fail listing the known ones."""
    _load_builtin_rewards()
    try:
        return REWARDS[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}") from None


def needs_ref_logprobs(names: Iterable[str]) -> bool:
    """Whether any of the named rewards reads the reference log-probs (the trainer computes them only then)."""
    _load_builtin_rewards()
    return any(name in NEEDS_REF_LOGPROBS for name in names)
