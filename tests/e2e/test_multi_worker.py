"""Two of each role on one CPU box: 2 vLLM rollout engines + 2 DeepSpeed learner ranks (gloo) + 2 reward actors.

Two GRPO steps from a fresh LoRA; after each: both learner ranks hold the same adapter (gradients were
all-reduced), every rollout engine's log-probs under the synced adapter match the learner's, every sample was
trained on exactly once, and the step's metrics come from both ranks. Run colocated (rollout engine i in learner
rank i's placement bundle) and with the next batch sampled during each update (`train.overlap_rollout`).
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def multi_cfg(tmp_path_factory, quickstart_config):
    import ray

    from cluster.environment import apply_defaults, init_ray

    out = tmp_path_factory.mktemp("multi")
    cfg = quickstart_config(
        out,
        "train.steps=2",
        "rollout.num_workers=2",
        "learner.num_workers=2",
        "reward.num_workers=2",
        "rollout.threads=1",  # four actors share two cores
        "learner.threads=1",
        "rollout.max_new_tokens=32",
        "rollout.colocate_with_learner=true",
        "train.overlap_rollout=true",
    )
    apply_defaults(cfg)
    init_ray(None, cfg.ray.num_cpus)
    yield cfg
    ray.shutdown()


def test_two_rollout_two_learner_two_reward_workers(multi_cfg):
    import ray

    from cluster.stages import ensure_data, ensure_model
    from pipelines.building.dataset import load_examples
    from rl_actors.learner import SAMPLES_KEY
    from rl_actors.trainer import GRPOTrainer

    cfg = multi_cfg
    summary = ensure_data(cfg)
    ensure_model(cfg)
    rows = load_examples(summary["paths"]["train"])
    trainer = GRPOTrainer(cfg, rows, None)
    try:
        assert (len(trainer.rollout), len(trainer.learner), len(trainer.reward)) == (2, 2, 2)
        # Colocated: one placement group, bundle i sized for learner rank i + rollout engine i, both in it (Ray's
        # own accounting of what is left in each bundle).
        shared = trainer.colocated
        assert trainer.learner.placement_group is shared is trainer.rollout.placement_group
        per_bundle = cfg.learner.num_cpus_per_worker + cfg.rollout.num_cpus_per_worker
        assert [b["CPU"] for b in ray.util.placement_group_table(shared)["bundles"].values()] == [per_bundle] * 2
        bundle_cpus = [f"CPU_group_{i}_{shared.id.hex()}" for i in range(2)]
        assert [ray.cluster_resources()[key] for key in bundle_cpus] == [per_bundle] * 2
        assert [ray.available_resources().get(key, 0.0) for key in bundle_cpus] == [0.0, 0.0]  # each holds both
        per_step = cfg.train.prompts_per_step * cfg.rollout.group_size
        probe = None
        for step in range(cfg.train.steps):
            metrics = trainer.step(step)  # raises, naming the group, if a sample were lost or duplicated
            assert metrics[SAMPLES_KEY] == per_step  # each sample trained on by exactly one rank
            assert metrics["adapter/version"] == step + 1
            assert metrics["rollout/policy_lag"] == min(step, 1)  # step 1's batch was sampled during step 0's update
            assert metrics["sync/max_abs_logprob_diff"] < 1e-3  # over both rollout engines
            assert "actor/loss" in metrics and metrics["time/learn"] > 0
            if probe is None:
                prompt = trainer.source.prompt_ids(trainer.rows[0]["prompt"])
                # any completion works for comparing weights
                probe = [(prompt, trainer.source.prompt_ids(trainer.rows[1]["prompt"])[-8:])]
            ranks = trainer.learner.call("logprobs", probe)
            assert max(abs(a - b) for a, b in zip(ranks[0][0], ranks[1][0])) < 1e-6  # identical adapters
            engines = trainer.rollout.call("score", probe)
            assert max(abs(a - b) for e in engines for a, b in zip(ranks[0][0], e[0])) < 1e-3
        assert ray.get(trainer.learner.workers[1].snapshot.remote(9)) is None  # only rank 0 publishes
    finally:
        trainer.shutdown()
