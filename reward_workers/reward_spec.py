"""What a reward is: its input, its signature, and the decorator a reward module declares itself with."""

from __future__ import annotations

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
    # filled in by the trainer only when a weighted reward declares `needs_ref_logprobs` (perplexity).
    ref_logprobs: tuple[float, ...] | None = None
    # 1-based prompt line numbers that carry the anomaly (from the data pipeline); None = unknown. An
    # `anomalous` verdict earns evidence credit only by citing one of them.
    anomaly_lines: tuple[int, ...] | None = None


RewardFn = Callable[[RewardInput, RewardConfig], float]

REWARDS: dict[str, RewardFn] = {}
NEEDS_REF_LOGPROBS: set[str] = set()  # names of the rewards that read `RewardInput.ref_logprobs`


def register_reward(name: str, needs_ref_logprobs: bool = False) -> Callable[[RewardFn], RewardFn]:
    """Register a reward under `name`; registering a name twice is an error.

    `needs_ref_logprobs`: the reward reads the completion's reference log-probs, which the trainer then computes
    on the learner (in the same forward pass as the KL term) whenever the reward is weighted.
    """

    def decorator(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered (by {REWARDS[name].__module__})")
        REWARDS[name] = fn
        if needs_ref_logprobs:
            NEEDS_REF_LOGPROBS.add(name)
        return fn

    return decorator
