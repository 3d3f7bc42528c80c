"""The Ray shell around LearnerCore: one learner rank as an actor (resources chosen by the caller), which also takes
views of the step's columnar batch and fetches the samples itself (`rl_actors.columns`)."""

from collections.abc import Sequence

import ray

from rl_actors.batch import Sample
from rl_actors.columns import LogprobColumns, StepView
from rl_actors.learner import LearnerCore, Pair


class LearnerActor(LearnerCore):
    def grpo_step(self, samples: Sequence[Sample] | StepView) -> dict[str, float]:
        return super().grpo_step(samples.samples() if isinstance(samples, StepView) else samples)

    def logprobs(self, pairs: list[Pair] | StepView, reference: bool = False, temperature: float = 1.0):
        return super().logprobs(pairs.pairs() if isinstance(pairs, StepView) else pairs, reference, temperature)

    @ray.method(num_returns=2)
    def reference_columns(self, view: StepView, temperature: float) -> tuple[int, LogprobColumns]:
        """Reference log-probs of this rank's shard: (its size, for the driver; the columns, left in the store)."""
        columns = LogprobColumns.of(super().logprobs(view.pairs(), reference=True, temperature=temperature))
        return len(columns), columns


LearnerWorker = ray.remote(LearnerActor)
