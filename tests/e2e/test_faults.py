"""A rollout engine or a reward actor killed mid-step is replaced, and the step completes with all P x G samples.

Real actors (vLLM rollout engine, DeepSpeed learner, reward actor) on the tiny model. Each victim is killed by its
handle from inside a running step: the rollout engine as the step's prompts are drawn (before its `generate`
returns), the reward actor between the rollout and the scoring.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, quickstart_config):
    import ray

    from cluster.environment import apply_defaults, init_ray
    from cluster.stages import ensure_data, ensure_model
    from pipelines.building.dataset import load_examples
    from rl_actors.trainer import GRPOTrainer

    out = tmp_path_factory.mktemp("faults")
    cfg = quickstart_config(
        out, "tiny_model.pretrain_steps=0", "train.prompts_per_step=2", "rollout.group_size=2",
        "rollout.max_new_tokens=32",
    )  # fmt: skip
    apply_defaults(cfg)
    init_ray(None, cfg.ray.num_cpus)
    rows = load_examples(ensure_data(cfg)["paths"]["train"])
    ensure_model(cfg)
    trainer = GRPOTrainer(cfg, rows, None)
    yield trainer
    trainer.shutdown()
    ray.shutdown()


def _kill_during(trainer, method: str, victim) -> None:
    """Kill `victim` when the running step next calls `trainer.<method>`."""
    import ray

    original = getattr(trainer, method)

    def kill_then_call(*args, **kwargs):
        ray.kill(victim)
        setattr(trainer, method, original)
        return original(*args, **kwargs)

    setattr(trainer, method, kill_then_call)


def test_killed_rollout_and_reward_actors_are_replaced_mid_step(trainer):
    from rl_actors.learner import SAMPLES_KEY

    per_step = trainer.cfg.train.prompts_per_step * trainer.cfg.rollout.group_size
    healthy = trainer.step(0)
    assert healthy[SAMPLES_KEY] == per_step and healthy["faults/replaced_actors"] == 0

    engine = trainer.rollout.workers[0]
    _kill_during(trainer, "prompt_groups", engine)  # dies as the step begins; its generate call fails
    after_rollout_kill = trainer.step(1)
    assert trainer.rollout.workers[0] is not engine
    assert after_rollout_kill[SAMPLES_KEY] == per_step and after_rollout_kill["faults/replaced_actors"] == 1
    # The replacement engine was given the adapter the step sampled with, then synced the new one.
    assert after_rollout_kill["adapter/version"] == 2
    assert after_rollout_kill["sync/max_abs_logprob_diff"] < 1e-3

    scorer = trainer.reward.workers[0]
    _kill_during(trainer, "reference_logprobs", scorer)  # dies after the rollout, before the scoring
    after_reward_kill = trainer.step(2)
    assert trainer.reward.workers[0] is not scorer
    assert after_reward_kill[SAMPLES_KEY] == per_step and after_reward_kill["faults/replaced_actors"] == 2
    assert set(healthy) <= set(after_reward_kill)  # every reward component and metric still reported
