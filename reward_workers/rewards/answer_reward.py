"""The asymmetric answer reward: payoff of the verdict's confusion cell (a missed anomaly costs most)."""

from __future__ import annotations

from contract.completion_format import VERDICTS, parse_completion
from reward_workers.config import RewardConfig
from reward_workers.reward_spec import RewardInput, register_reward


@register_reward("answer")
def answer_reward(sample: RewardInput, cfg: RewardConfig) -> float:
    """Payoff tp/tn/fp/fn from config; no parsable verdict gets `payoffs.invalid_payoff()`.

    Range: [min of the payoffs, max of the payoffs] (defaults [-1.5, 1.0]). Only the completion is parsed, so
    tags inside the prompt's log text cannot reach the verdict.
    """
    if sample.label not in VERDICTS:
        raise ValueError(f"label must be one of {VERDICTS}, got {sample.label!r}")
    payoffs = cfg.payoffs
    verdict = parse_completion(sample.completion).verdict
    if verdict is None:
        return payoffs.invalid_payoff()
    said_anomalous = verdict == "anomalous"
    is_anomalous = sample.label == "anomalous"
    if said_anomalous:
        return payoffs.tp if is_anomalous else payoffs.fp
    return payoffs.fn if is_anomalous else payoffs.tn
