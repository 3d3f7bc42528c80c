"""The reward actor the trainer starts: the pure RewardScorer, also taking a view of the step's columnar batch (its
samples fetched here, with the context (prompt, label, reference) the rollout engine kept beside each group)."""

from __future__ import annotations

import numpy as np
import ray

from reward_workers.registry import RewardInput
from reward_workers.scorer import RewardScorer
from rl_actors.columns import StepView


class RewardActor(RewardScorer):
    def score_timed(self, samples: list[RewardInput] | StepView) -> tuple[list[dict[str, float]], dict[str, float]]:
        return super().score_timed(samples.reward_inputs() if isinstance(samples, StepView) else samples)

    def score_columns_timed(self, samples: list[RewardInput] | StepView) -> tuple[dict[str, np.ndarray], dict]:
        return super().score_columns_timed(samples.reward_inputs() if isinstance(samples, StepView) else samples)


RewardWorker = ray.remote(RewardActor)
