"""The Ray shell around LearnerCore: one learner rank as an actor (resources chosen by the caller)."""

import ray

from rl_actors.learner import LearnerCore

LearnerWorker = ray.remote(LearnerCore)
