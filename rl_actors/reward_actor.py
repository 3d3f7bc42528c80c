"""The reward actor the trainer starts: the pure RewardScorer, also taking a view of the step's columnar batch (its
samples fetched here, their group's prompt, label and reference from the step's contexts)."""

from __future__ import annotations

import ray

from reward_workers.registry import RewardInput
from reward_workers.scorer import RewardScorer
from rl_actors.columns import StepView


class RewardActor(RewardScorer):
    def score_timed(self, samples: list[RewardInput] | StepView) -> tuple[list[dict[str, float]], dict[str, float]]:
        return super().score_timed(samples.reward_inputs() if isinstance(samples, StepView) else samples)


RewardWorker = ray.remote(RewardActor)
