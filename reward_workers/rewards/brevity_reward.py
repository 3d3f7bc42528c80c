"""The brevity reward: full credit for a rationale within the character budget, exponential decay beyond."""

from __future__ import annotations

import math

from contract.completion_format import parse_completion
from reward_workers.config import RewardConfig
from reward_workers.reward_spec import RewardInput, register_reward


@register_reward("brevity")
def brevity_reward(sample: RewardInput, cfg: RewardConfig) -> float:
    """1.0 up to `brevity_target_chars` of rationale, then exp(-excess / brevity_decay_chars). Range [0, 1].

    A malformed completion, or one without a rationale, scores 0: an empty rationale must not look like a
    perfectly short one.
    """
    parsed = parse_completion(sample.completion)
    if not parsed.well_formed or not parsed.rationale:
        return 0.0
    excess = len(parsed.rationale) - cfg.brevity_target_chars
    if excess <= 0:
        return 1.0
    return math.exp(-excess / cfg.brevity_decay_chars)
