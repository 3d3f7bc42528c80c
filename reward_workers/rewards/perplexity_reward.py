"""The perplexity reward: how natural the completion reads to the reference model (RationAnomaly's fluency term)."""

from __future__ import annotations

import math

from contract.completion_format import parse_completion
from reward_workers.config import RewardConfig
from reward_workers.reward_spec import RewardInput, register_reward


# Logprobs, not text, are the input: the trainer computes them on the learner with the adapter disabled, in the
# same forward pass that serves the KL term, so the reward stays a pure function of its input.
@register_reward("perplexity", needs_ref_logprobs=True)
def perplexity_reward(sample: RewardInput, cfg: RewardConfig) -> float:
    """1 / perplexity of the completion under the reference model: exp(mean token logprob). Range [0, 1].

    Malformed completions score 0, so fluent nonsense outside the format earns nothing.
    """
    if sample.ref_logprobs is None:
        raise ValueError("the perplexity reward needs ref_logprobs (the trainer adds them when it is weighted)")
    if not sample.ref_logprobs or not parse_completion(sample.completion).well_formed:
        return 0.0
    return math.exp(sum(sample.ref_logprobs) / len(sample.ref_logprobs))
