"""Two of each role on one CPU box: 2 vLLM rollout engines + 2 DeepSpeed learner ranks (gloo) + 2 reward actors.

Two GRPO steps from a fresh LoRA; after each: both learner ranks hold the same adapter (gradients were
all-reduced), every rollout engine's log-probs under the synced adapter match the learner's, every sample was
trained on exactly once, and the step's metrics come from both ranks.
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
    )
    apply_defaults(cfg)
    init_ray(None, cfg.ray.num_cpus)
    yield cfg
    ray.shutdown()


def test_two_rollout_two_learner_two_reward_workers(multi_cfg):
    import ray

    from cluster.stages import ensure_data, ensure_model
    from pipelines.build_dataset import load_examples
    from rl_actors.learner import SAMPLES_KEY
    from rl_actors.trainer import GRPOTrainer

    cfg = multi_cfg
    summary = ensure_data(cfg)
    ensure_model(cfg)
    rows = load_examples(summary["paths"]["train"])
    trainer = GRPOTrainer(cfg, rows, None)
    try:
        assert (len(trainer.rollout), len(trainer.learner), len(trainer.reward)) == (2, 2, 2)
        per_step = cfg.train.prompts_per_step * cfg.rollout.group_size
        probe = None
        for step in range(cfg.train.steps):
            metrics = trainer.step(step)  # raises, naming the group, if a sample were lost or duplicated
            assert metrics[SAMPLES_KEY] == per_step  # each sample trained on by exactly one rank
            assert metrics["adapter/version"] == step + 1
            assert metrics["sync/max_abs_logprob_diff"] < 1e-3  # over both rollout engines
            assert "actor/loss" in metrics and metrics["time/learn"] > 0
            if probe is None:
                prompt = trainer.prompt_ids[0]
                probe = [(prompt, trainer.prompt_ids[1][-8:])]  # any completion works for comparing weights
            ranks = trainer.learner.call("logprobs", probe)
            assert max(abs(a - b) for a, b in zip(ranks[0][0], ranks[1][0])) < 1e-6  # identical adapters
            engines = trainer.rollout.call("score", probe)
            assert max(abs(a - b) for e in engines for a, b in zip(ranks[0][0], e[0])) < 1e-3
        assert ray.get(trainer.learner.workers[1].snapshot.remote(9)) is None  # only rank 0 publishes
    finally:
        trainer.shutdown()
