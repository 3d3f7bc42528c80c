"""The reward registry: name -> pure function of (RewardInput, RewardConfig) -> float."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from reward_workers.config import RewardConfig


@dataclass(frozen=True)
class RewardInput:
    """One scored sample: the rendered prompt, the sampled completion, the gold label, the teacher rationale."""

    prompt: str
    completion: str
    label: str  # "normal" | "anomalous"
    reference: str
    # Per-token logprobs of the completion under the reference model (the policy with its adapter disabled);
    # filled in by the trainer only when a reward that needs them (perplexity) is weighted.
    ref_logprobs: tuple[float, ...] | None = None
    # 1-based prompt line numbers that carry the anomaly (from the data pipeline); None = unknown. An
    # `anomalous` verdict earns evidence credit only by citing one of them.
    anomaly_lines: tuple[int, ...] | None = None


RewardFn = Callable[[RewardInput, RewardConfig], float]

REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Register a reward under `name`; registering a name twice is an error."""

    def decorator(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered (by {REWARDS[name].__module__})")
        REWARDS[name] = fn
        return fn

    return decorator


def _load_builtin_rewards() -> None:
    # Imported lazily: the reward modules import this module to register themselves.
    importlib.import_module("reward_workers.rewards")


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
