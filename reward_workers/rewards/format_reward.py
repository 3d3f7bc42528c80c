"""The format reward: is the completion exactly `<think>…</think><answer>verdict</answer>` (or answer-first)?"""

from __future__ import annotations

from contract.completion_format import SPECIAL_TAGS, parse_completion
from reward_workers.config import RewardConfig
from reward_workers.reward_spec import RewardInput, register_reward

# Partial credit per special tag present exactly once; four tags give at most half of a well-formed completion.
_PER_TAG_CREDIT = 0.125
# A well-formed verdict with no reasoning (answer only, or an empty think block): the format is half there.
_NO_RATIONALE_CREDIT = 0.5


@register_reward("format")
def format_reward(sample: RewardInput, cfg: RewardConfig) -> float:
    """1.0 if well formed with a rationale; 0.5 with an empty one; 0.125 per tag present once otherwise; 0.0 if
    any tag repeats. Range [0, 1]."""
    text = sample.completion
    parsed = parse_completion(text)
    if parsed.well_formed:
        return 1.0 if parsed.rationale else _NO_RATIONALE_CREDIT
    counts = [text.count(tag) for tag in SPECIAL_TAGS]
    # A repeated tag is how copied log text would smuggle in a verdict: no credit at all.
    if any(count > 1 for count in counts):
        return 0.0
    return _PER_TAG_CREDIT * sum(counts)
