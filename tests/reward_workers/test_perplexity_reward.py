"""The perplexity reward: exp(mean reference logprob) of well-formed completions; it needs the logprobs."""

from __future__ import annotations

import math

import pytest

from reward_workers.config import RewardConfig
from reward_workers.registry import RewardInput, get_reward

GOOD = '<think>L1 "x"</think><answer>normal</answer>'


def _sample(completion: str, ref):
    return RewardInput("L1 KERNEL INFO: x", completion, "normal", "r", ref)


def test_inverse_perplexity_of_the_completion():
    reward = get_reward("perplexity")
    assert reward(_sample(GOOD, (-1.0, -3.0)), RewardConfig()) == pytest.approx(math.exp(-2.0))
    assert reward(_sample(GOOD, (0.0, 0.0)), RewardConfig()) == pytest.approx(1.0)


def test_more_likely_text_scores_higher():
    reward = get_reward("perplexity")
    assert reward(_sample(GOOD, (-0.5, -0.5)), RewardConfig()) > reward(_sample(GOOD, (-4.0, -4.0)), RewardConfig())


def test_malformed_or_empty_scores_zero_and_missing_logprobs_is_an_error():
    reward = get_reward("perplexity")
    assert reward(_sample("<answer>normal", (-0.1,)), RewardConfig()) == 0.0
    assert reward(_sample(GOOD, ()), RewardConfig()) == 0.0
    with pytest.raises(ValueError, match="ref_logprobs"):
        reward(_sample(GOOD, None), RewardConfig())
