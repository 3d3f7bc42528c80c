"""Rollout engines added and removed while a run goes on: 1 -> 2 -> 1 through `logrl scale`, one GRPO step each.

The added engine loads the current adapter and is sync-checked against the learner before it samples; every step
trains on each of its P x G samples exactly once (a lost or doubled sample stops the step, naming its group).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_one_two_one_rollout_engines_in_a_running_job(tmp_path, quickstart_config):
    import ray

    from cluster.cli import main
    from cluster.environment import apply_defaults, init_ray
    from cluster.stages import ensure_data, ensure_model
    from pipelines.building.dataset import load_examples
    from rl_actors.learner import SAMPLES_KEY
    from rl_actors.trainer import GRPOTrainer

    overrides = [
        "tiny_model.pretrain_steps=0", "sft.steps=0", "train.prompts_per_step=2", "rollout.group_size=2",
        "rollout.max_new_tokens=16", "rollout.threads=1", "learner.threads=1", "algo.kl_coef=0",
        "reward.weights={format: 0.5, answer: 1.0}",
    ]  # fmt: skip
    cfg = quickstart_config(tmp_path, *overrides)
    apply_defaults(cfg)
    init_ray(None, cfg.ray.num_cpus)
    rows = load_examples(ensure_data(cfg)["paths"]["train"])
    ensure_model(cfg)
    trainer = GRPOTrainer(cfg, rows, None)
    per_step = cfg.train.prompts_per_step * cfg.rollout.group_size
    scale = ["scale", "--config", "configs/quickstart.yaml", "--set", f"train.output_dir={tmp_path}", "--rollout"]
    try:
        one = trainer.step(0)
        assert one["rollout/engines"] == 1 and one[SAMPLES_KEY] == per_step
        assert main([*scale, "2"]) == 0  # the running job's control actor takes the request
        two = trainer.step(1)
        assert two["rollout/engines"] == 2 and len(trainer.rollout) == 2 and two[SAMPLES_KEY] == per_step
        assert two["rollout/new_engine_sync_diff"] < 1e-3  # it loaded adapter v1 before sampling
        assert two["sync/max_abs_logprob_diff"] < 1e-3  # both engines synced to v2 after the step
        assert main([*scale, "1"]) == 0
        back = trainer.step(2)
        assert back["rollout/engines"] == 1 and len(trainer.rollout) == 1 and back[SAMPLES_KEY] == per_step
        assert [m["adapter/version"] for m in (one, two, back)] == [1, 2, 3]
    finally:
        trainer.shutdown()
        ray.shutdown()
